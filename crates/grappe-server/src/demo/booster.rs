//! The demo's IA Booster: its rolling call (one expert review per request, decided one by one)
//! and seven fictitious companies with a diagnostic each, registered by the demo's company
//! member: five SMEs in software (NAF section J), a group large enough for the peer comparison,
//! and two mid-sized manufacturers (section C), a group too small to show. One company has asked
//! for support, left for the call's managers to decide. Names and SIRENs are made up (the
//! SIRENs pass the Luhn check); made once, at the first start.

use grappe_db::{DAY_MS, now_ms};
use grappe_domain::account::{Role, RoleGrant, Scope, ScopeKind};
use grappe_domain::money::Cents;

use crate::booster::{
    BOOSTER_INSTRUMENT, CompanyBody, SupportBody, check_company, diagnose, register, request_support,
};
use crate::calls::{Criterion, NewCallBody};
use crate::kit::error::{AppError, AppResult};
use crate::kit::state::AppState;

use super::calls::{MANAGER, caller_by_email, unprinted_account};

const MEMBER: &str = "company-member@demo.grappe.fr";

/// Name, SIREN, size class, NAF code, and the answers to the 17 questions in order.
const COMPANIES: [(&str, &str, &str, &str, [i64; 17]); 7] = [
    ("Logiciels Armor", "900 000 019", "sme", "62.01Z", [2, 1, 1, 2, 1, 1, 0, 2, 1, 0, 2, 1, 2, 0, 0, 1, 1]),
    ("Datavigne", "900 000 027", "sme", "62.02A", [3, 2, 2, 2, 2, 1, 1, 3, 2, 1, 2, 1, 2, 1, 1, 1, 2]),
    ("Code Azur", "900 000 035", "sme", "62.01Z", [1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0]),
    ("Numérique Loire", "900 000 043", "sme", "63.11Z", [3, 3, 2, 3, 3, 2, 2, 3, 3, 2, 3, 2, 3, 2, 2, 2, 3]),
    ("Alpes Services Web", "900 000 050", "sme", "62.09Z", [2, 2, 1, 1, 1, 2, 1, 2, 1, 1, 2, 2, 2, 1, 0, 1, 1]),
    ("Forges de l'Est", "900 000 068", "eti", "25.62B", [1, 1, 2, 1, 1, 0, 1, 1, 1, 0, 1, 0, 2, 1, 0, 0, 1]),
    ("Plasturgie Rhône", "900 000 076", "eti", "22.29A", [2, 1, 2, 1, 1, 1, 0, 2, 1, 1, 1, 1, 2, 0, 1, 0, 1]),
];

const AI_ACT_CLASSES: [&str; 7] = ["limited", "minimal", "unknown", "high", "limited", "minimal", "unknown"];

pub(super) async fn load(state: &AppState) -> AppResult<()> {
    const NAME: &str = "ia-booster";
    if state.db.call_by_name(NAME).await?.is_some() {
        return Ok(());
    }
    let manager = caller_by_email(state, MANAGER).await?;
    let member = caller_by_email(state, MEMBER).await?;
    let criteria = [
        ("impact", "Impact pour l'entreprise", "Impact for the company"),
        ("feasibility", "Faisabilité", "Feasibility"),
    ]
    .into_iter()
    .map(|(key, fr, en)| Criterion { key: key.to_owned(), fr: fr.to_owned(), en: en.to_owned(), weight: 1.0 })
    .collect();
    let body = NewCallBody {
        name: NAME.to_owned(),
        instrument: BOOSTER_INSTRUMENT.to_owned(),
        title_fr: "IA Booster : accompagnement et calcul pour les PME et ETI".to_owned(),
        title_en: "IA Booster: support and compute for SMEs and mid-sized companies".to_owned(),
        text_fr: "Appel permanent : chaque demande est examinée par un expert et décidée à son tour ; une \
            demande accordée devient un projet avec une petite allocation d'heures GPU."
            .to_owned(),
        text_en: "A rolling call: each request is reviewed by one expert and decided in turn; a granted \
            request becomes a project with a small allocation of GPU-hours."
            .to_owned(),
        criteria,
        scale_max: 5,
        envelope_cents: Cents::from_million_euros(5).get(),
        reviewers_per_application: 1,
        opens_at: now_ms() - DAY_MS,
        closes_at: None,
        review_ends_at: None,
    };
    crate::calls::new_call(state, &manager, body).await?;
    for ((name, siren, size_class, naf, answers), class) in COMPANIES.iter().zip(AI_ACT_CLASSES) {
        let body = CompanyBody {
            name: (*name).to_owned(),
            siren: (*siren).to_owned(),
            size_class: (*size_class).to_owned(),
            naf: (*naf).to_owned(),
        };
        let checked = check_company(&body)
            .map_err(|errors| AppError::Internal(anyhow::anyhow!("demo company {name}: {errors:?}")))?;
        // Each company registered by its own contact (peer groups count distinct registrants),
        // the demo's company member then made a member of each.
        let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase();
        let contact =
            unprinted_account(state, &format!("contact@{slug}.demo.grappe.fr"), &format!("Contact {name}")).await?;
        let company = register(state, &contact, &checked).await?;
        let grant = RoleGrant {
            role: Role::CompanyMember,
            scope: Scope::Object { kind: ScopeKind::Organisation, id: company.id },
        };
        let member_id = member.actor.user_id().ok_or_else(|| anyhow::anyhow!("the demo's company member"))?;
        state.db.grant_role(member_id, &grant, "demo").await?;
        let answers: Vec<(String, i64)> = grappe_booster::QUESTIONS
            .iter()
            .zip(answers)
            .map(|(question, value)| (question.id.to_owned(), *value))
            .collect();
        diagnose(state, &contact, &company, &answers, class).await?;
        if *name == "Logiciels Armor" {
            let request = SupportBody {
                title: "Tri automatique des tickets du support client".to_owned(),
                summary: "Affiner un petit modèle de langue sur 30 000 tickets anonymisés pour les orienter \
                    vers la bonne équipe."
                    .to_owned(),
                requested_cents: Cents::from_million_euros(1).get() / 20,
                requested_gpu_hours: 500,
            };
            request_support(state, &contact, &company, request).await?;
        }
    }
    Ok(())
}
