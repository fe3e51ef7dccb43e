//! The demo's calls for proposals: `ia-cluster`, open for applications, and `ia-cluster-2024`,
//! run through every step a real call goes through, by the same functions as the API (opened,
//! applied to, its jury invited, conflicts detected and declared, assigned, closed, reviewed,
//! discussed, decided), so that the jury's pages, the ranking, the decisions and the budget
//! line's commitments have something to show. Each call is made once, at the first start: a call
//! that exists is left as it is (a first start killed half-way leaves it half made). The 2024
//! call's applications, jurors and reviews are fictitious.

use axum::extract::{Path as UrlPath, State};
use axum::{Extension, Json};
use grappe_db::{CallRow, DAY_MS, now_ms};
use grappe_domain::account::Email;
use grappe_domain::money::Cents;
use serde_json::{Map, Value, json};

use crate::account::api::{NewUserFields, create_user_from};
use crate::calls::decisions::{DecisionBody, DecisionsBody, ranking_of, take_decisions};
use crate::calls::jury::{self, DeclarationBody, NewJurorBody, ReviewBody};
use crate::calls::{ApplicationBody, Criterion, DatesBody, NewCallBody, discussion, move_dates};
use crate::kit::caller::{self, Caller};
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::state::AppState;

pub(super) async fn load(state: &AppState) -> AppResult<()> {
    open_call(state).await?;
    decided_call(state).await
}

pub(super) const MANAGER: &str = "call-manager@demo.grappe.fr";
const APPLICANT: &str = "applicant@demo.grappe.fr";

pub(super) async fn caller_by_email(state: &AppState, email: &str) -> AppResult<Caller> {
    let email = Email::parse(email)?;
    let user = state.db.user_by_email(&email).await?.ok_or_else(|| anyhow::anyhow!("{email} is missing"))?;
    caller::caller_of_user(state, user).await
}

/// The four criteria of the IA-cluster calls, each of weight 1.
fn criteria() -> Vec<Criterion> {
    [
        ("teaching", "Qualité de la formation", "Quality of teaching"),
        ("research", "Excellence de la recherche", "Research excellence"),
        ("innovation", "Innovation et transfert", "Innovation and transfer"),
        ("attractiveness", "Attractivité internationale", "International attractiveness"),
    ]
    .into_iter()
    .map(|(key, fr, en)| Criterion { key: key.to_owned(), fr: fr.to_owned(), en: en.to_owned(), weight: 1.0 })
    .collect()
}

/// A demo application.
struct DemoApplication {
    organisation: &'static str,
    title: &'static str,
    summary: &'static str,
    partners: &'static [&'static str],
    keywords: &'static [&'static str],
    million_euros: i64,
    gpu_hours: i64,
}

impl DemoApplication {
    fn body(&self) -> ApplicationBody {
        let list = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
        ApplicationBody {
            organisation: self.organisation.to_owned(),
            title: self.title.to_owned(),
            summary: self.summary.to_owned(),
            partners: list(self.partners),
            keywords: list(self.keywords),
            requested_cents: Cents::from_million_euros(self.million_euros).get(),
            requested_gpu_hours: self.gpu_hours,
            version: None,
        }
    }
}

/// The demo's applications to the open IA-cluster call.
const OPEN_APPLICATIONS: [DemoApplication; 3] = [
    DemoApplication {
        organisation: "Université Paris-Saclay",
        title: "DataIA Saclay : un pôle d'IA pour la science et l'industrie",
        summary: "Formation de 2 000 étudiants par an en IA, recherche sur l'apprentissage frugal et l'IA pour la santé, transfert vers les PME du plateau.",
        partners: &["Inria", "CNRS", "CEA"],
        keywords: &["apprentissage automatique", "santé", "frugalité"],
        million_euros: 40,
        gpu_hours: 2_000_000,
    },
    DemoApplication {
        organisation: "Université Grenoble Alpes",
        title: "MIAI Grenoble : IA embarquée et de confiance",
        summary: "IA pour l'énergie, l'environnement et les systèmes embarqués ; programmes internationaux de master et de doctorat.",
        partners: &["Inria", "Grenoble INP"],
        keywords: &["IA embarquée", "énergie", "confiance"],
        million_euros: 35,
        gpu_hours: 1_500_000,
    },
    DemoApplication {
        organisation: "Université Côte d'Azur",
        title: "3IA Côte d'Azur : IA pour la santé et les territoires",
        summary: "Chaires internationales, IA pour la médecine computationnelle et pour les territoires intelligents.",
        partners: &["Inria", "CNRS", "Eurecom"],
        keywords: &["santé", "territoires", "vision"],
        million_euros: 30,
        gpu_hours: 1_000_000,
    },
];

/// The IA-cluster call, opened by the demo's call manager, with the four criteria of the seed
/// on 0 to 5, the 360 M€ the 2024 jury shared, a deadline in thirty days, and three
/// applications of the demo's applicant.
async fn open_call(state: &AppState) -> AppResult<()> {
    const NAME: &str = "ia-cluster";
    if state.db.call_by_name(NAME).await?.is_some() {
        return Ok(());
    }
    let manager = caller_by_email(state, MANAGER).await?;
    let applicant = caller_by_email(state, APPLICANT).await?;
    let now = now_ms();
    let body = NewCallBody {
        name: NAME.to_owned(),
        instrument: "ia_cluster".to_owned(),
        title_fr: "Pôles de recherche et de formation en IA (IA-Clusters)".to_owned(),
        title_en: "AI research and training clusters (IA-Clusters)".to_owned(),
        text_fr: "Un jury international sélectionne **5 à 10** pôles d'IA sur la qualité de leur formation, \
            l'excellence de leur recherche, leur potentiel d'innovation et de transfert, et leur attractivité \
            internationale."
            .to_owned(),
        text_en: "An international jury selects **5 to 10** AI clusters on the quality of their teaching, the \
            excellence of their research, their innovation and transfer potential, and their international \
            attractiveness."
            .to_owned(),
        criteria: criteria(),
        scale_max: 5,
        envelope_cents: Cents::from_million_euros(360).get(),
        reviewers_per_application: 3,
        opens_at: now - DAY_MS,
        closes_at: Some(now + 30 * DAY_MS),
        review_ends_at: Some(now + 60 * DAY_MS),
    };
    let call = crate::calls::new_call(state, &manager, body).await?;
    for application in &OPEN_APPLICATIONS {
        crate::calls::new_application(state, &applicant, &call, application.body()).await?;
    }
    Ok(())
}

/// The applications to the 2024 call (fictitious: titles, partners, amounts and GPU-hours are
/// made up for the demonstration).
const APPLICATIONS_2024: [DemoApplication; 12] = [
    DemoApplication {
        organisation: "Université PSL",
        title: "PSAI : l'IA au service des sciences fondamentales",
        summary: "Un pôle d'IA pour la physique, la biologie et les mathématiques ; 1 500 étudiants formés par an.",
        partners: &["Inria", "CNRS", "Institut Pasteur"],
        keywords: &["apprentissage automatique", "physique", "santé"],
        million_euros: 60,
        gpu_hours: 3_000_000,
    },
    DemoApplication {
        organisation: "Université de Toulouse",
        title: "ANITI 2 : une IA certifiable pour l'aéronautique",
        summary: "IA de confiance et certifiable pour les systèmes critiques, avec les industriels de l'aéronautique.",
        partners: &["ONERA", "CNRS", "Airbus"],
        keywords: &["IA de confiance", "aéronautique", "certification"],
        million_euros: 55,
        gpu_hours: 2_500_000,
    },
    DemoApplication {
        organisation: "Université de Bordeaux",
        title: "BIA : l'IA pour la santé publique",
        summary: "Épidémiologie, données de santé et aide à la décision pour les politiques de santé publique.",
        partners: &["Inserm", "CHU de Bordeaux"],
        keywords: &["santé", "épidémiologie", "données de santé"],
        million_euros: 30,
        gpu_hours: 800_000,
    },
    DemoApplication {
        organisation: "Université de Lorraine",
        title: "ENACT Grand Est : l'IA pour l'industrie",
        summary: "Jumeaux numériques et robotique pour l'industrie du Grand Est, avec un partenaire allemand.",
        partners: &["Inria", "DFKI"],
        keywords: &["industrie", "robotique", "jumeau numérique"],
        million_euros: 35,
        gpu_hours: 1_200_000,
    },
    DemoApplication {
        organisation: "Université de Lille",
        title: "IA-Nord : vision et logistique",
        summary: "Vision par ordinateur et optimisation logistique pour les entreprises des Hauts-de-France.",
        partners: &["Centrale Lille", "Inria"],
        keywords: &["industrie", "vision", "logistique"],
        million_euros: 25,
        gpu_hours: 600_000,
    },
    DemoApplication {
        organisation: "Sorbonne Université",
        title: "SCAI : l'IA et les sciences humaines",
        summary: "Traitement automatique des langues et patrimoine numérique, avec les bibliothèques nationales.",
        partners: &["CNRS", "BnF"],
        keywords: &["langues", "traitement automatique des langues", "patrimoine"],
        million_euros: 40,
        gpu_hours: 1_500_000,
    },
    DemoApplication {
        organisation: "Université de Rennes",
        title: "IA et cybersécurité en Bretagne",
        summary: "Détection d'attaques, IA robuste et sécurité des réseaux, avec la défense et les opérateurs.",
        partners: &["Inria", "CNRS", "DGA"],
        keywords: &["cybersécurité", "IA de confiance", "réseaux"],
        million_euros: 28,
        gpu_hours: 700_000,
    },
    DemoApplication {
        organisation: "Aix-Marseille Université",
        title: "IA pour le climat et la mer",
        summary: "Modèles du climat méditerranéen et suivi de l'océan par apprentissage.",
        partners: &["CNRS", "Ifremer"],
        keywords: &["climat", "océan", "environnement"],
        million_euros: 20,
        gpu_hours: 900_000,
    },
    DemoApplication {
        organisation: "Université de Strasbourg",
        title: "IA et chirurgie guidée par l'image",
        summary: "Imagerie médicale et robotique chirurgicale, de la recherche au bloc opératoire.",
        partners: &["IRCAD", "Inserm"],
        keywords: &["santé", "imagerie", "robotique"],
        million_euros: 38,
        gpu_hours: 1_000_000,
    },
    DemoApplication {
        organisation: "Nantes Université",
        title: "IA et énergies renouvelables",
        summary: "Optimisation des réseaux d'énergie et de l'éolien en mer.",
        partners: &["École Centrale de Nantes", "IFPEN"],
        keywords: &["énergie", "environnement", "optimisation"],
        million_euros: 15,
        gpu_hours: 400_000,
    },
    DemoApplication {
        organisation: "Université de Montpellier",
        title: "IA pour l'agriculture et la biodiversité",
        summary: "Suivi des cultures et de la biodiversité par l'image, avec les instituts agronomiques.",
        partners: &["INRAE", "Cirad"],
        keywords: &["agriculture", "biodiversité", "vision"],
        million_euros: 45,
        gpu_hours: 1_100_000,
    },
    DemoApplication {
        organisation: "Université Clermont Auvergne",
        title: "IA frugale et embarquée",
        summary: "Des modèles sobres pour les objets connectés et les véhicules, du capteur au cloud.",
        partners: &["Inria", "CEA"],
        keywords: &["frugalité", "IA embarquée", "énergie"],
        million_euros: 50,
        gpu_hours: 1_300_000,
    },
];

/// A juror of the 2024 call (a fictitious person; its account has no printed password).
struct DemoJuror {
    email: &'static str,
    name: &'static str,
    country: &'static str,
    organisation: &'static str,
    keywords: &'static [&'static str],
}

/// The international jury: the first juror's organisation is a partner of the Lorraine
/// application (a conflict the server detects); the second declares one.
const JURORS_2024: [DemoJuror; 9] = [
    DemoJuror {
        email: "juror-1@jury.example.org",
        name: "Anna Keller",
        country: "DE",
        organisation: "DFKI",
        keywords: &["robotique", "industrie", "IA de confiance"],
    },
    DemoJuror {
        email: "juror-2@jury.example.org",
        name: "Marco Bellini",
        country: "IT",
        organisation: "Politecnico di Milano",
        keywords: &["industrie", "vision", "énergie"],
    },
    DemoJuror {
        email: "juror-3@jury.example.org",
        name: "Claire Tremblay",
        country: "CA",
        organisation: "Mila",
        keywords: &["apprentissage automatique", "langues", "santé"],
    },
    DemoJuror {
        email: "juror-4@jury.example.org",
        name: "David Chen",
        country: "US",
        organisation: "Carnegie Mellon University",
        keywords: &["robotique", "IA embarquée", "cybersécurité"],
    },
    DemoJuror {
        email: "juror-5@jury.example.org",
        name: "Sarah Thompson",
        country: "UK",
        organisation: "University of Edinburgh",
        keywords: &["traitement automatique des langues", "langues", "patrimoine"],
    },
    DemoJuror {
        email: "juror-6@jury.example.org",
        name: "Pieter de Vries",
        country: "NL",
        organisation: "TU Delft",
        keywords: &["climat", "océan", "environnement", "énergie"],
    },
    DemoJuror {
        email: "juror-7@jury.example.org",
        name: "Lena Meier",
        country: "CH",
        organisation: "ETH Zürich",
        keywords: &["frugalité", "optimisation", "IA embarquée"],
    },
    DemoJuror {
        email: "juror-8@jury.example.org",
        name: "Lucía Romero",
        country: "ES",
        organisation: "Barcelona Supercomputing Center",
        keywords: &["santé", "imagerie", "données de santé", "épidémiologie"],
    },
    DemoJuror {
        email: "juror-9@jury.example.org",
        name: "Kenji Sato",
        country: "JP",
        organisation: "RIKEN AIP",
        keywords: &["agriculture", "biodiversité", "apprentissage automatique", "physique"],
    },
];

/// The conflict the second juror declares: (application's position, reason).
const DECLARED: (usize, &str) = (4, "J'ai co-encadré une thèse avec l'équipe porteuse en 2023.");

/// Each application's quality (0 to 5) and each juror's leniency, from which the reviews'
/// scores follow.
const QUALITY: [f64; 12] = [4.6, 4.4, 3.6, 3.9, 3.0, 4.1, 3.4, 2.6, 3.8, 2.4, 3.7, 4.2];
const LENIENCY: [f64; 9] = [-0.5, 0.3, 0.0, 0.5, -0.3, 0.2, -0.2, 0.4, 0.1];

/// The application (its position) on which two jurors disagree: the first assigned juror
/// marks it high, the second low, so that the ranking flags its spread.
const DISPUTED: usize = 8;

/// Justifications by criterion, for a low (0-2), middling (3) and high (4-5) score.
const JUSTIFICATIONS: [(&str, [&str; 3]); 4] = [
    (
        "teaching",
        [
            "Offre de formation trop vague, sans objectifs chiffrés.",
            "Formation solide, mais le nombre d'étudiants visé reste modeste.",
            "Offre de formation ambitieuse, bien articulée avec les masters et les doctorats.",
        ],
    ),
    (
        "research",
        [
            "Équipes peu visibles au niveau international.",
            "Recherche de bon niveau, quelques équipes reconnues.",
            "Excellence scientifique reconnue, publications de premier plan.",
        ],
    ),
    (
        "innovation",
        [
            "Transfert vers l'industrie à peine décrit.",
            "Partenariats industriels présents mais peu engageants.",
            "Transfert convaincant : plateformes partagées, jeunes pousses, PME.",
        ],
    ),
    (
        "attractiveness",
        [
            "Peu de chaires ou de recrutements internationaux.",
            "Attractivité correcte, à renforcer.",
            "Très attractif : chaires internationales et doctorants étrangers.",
        ],
    ),
];

/// The jury's discussion of the disputed application: (who, message), who being the manager
/// (None) or the first or second juror who reviewed it.
const DISCUSSION: [(Option<usize>, &str); 3] = [
    (None, "Écart important entre vos notes sur ce dossier : pouvez-vous préciser vos appréciations ?"),
    (Some(0), "Le volet chirurgical est unique en Europe et l'équipe est excellente ; je maintiens ma note."),
    (Some(1), "Le budget me paraît surévalué et la formation peu détaillée ; je maintiens aussi la mienne."),
];

/// How many applications are selected, and the cut (in percent) of the amount granted to those
/// ranked after the first `FULL`.
const SELECTED: usize = 9;
const FULL: usize = 6;
const CUT_PERCENT: i64 = 15;

const DECIDED: &str = "ia-cluster-2024";

/// The first wave of the AI clusters (2024), decided: opened by the demo's call manager with
/// the open call's criteria and envelope, twelve applications, nine jurors, the assignment,
/// every review, a discussion, then nine applications selected within the envelope, which
/// became projects and commitments on the IA-cluster budget line.
async fn decided_call(state: &AppState) -> AppResult<()> {
    if state.db.call_by_name(DECIDED).await?.is_some() {
        return Ok(());
    }
    let manager = caller_by_email(state, MANAGER).await?;
    let call = open_2024(state, &manager).await?;
    let applicant = caller_by_email(state, APPLICANT).await?;
    let mut applications = Vec::new();
    for application in &APPLICATIONS_2024 {
        applications.push(crate::calls::new_application(state, &applicant, &call, application.body()).await?.id);
    }
    let jurors = invite_jury(state, &manager, &call).await?;
    let (position, reason) = DECLARED;
    let declaration = DeclarationBody { reason: reason.to_owned() };
    // The handler itself: declaring has no other path than the API's.
    let Json(_declared) = jury::declare_conflict(
        State(state.clone()),
        Extension(jurors[1].clone()),
        UrlPath(applications[position]),
        ApiJson(declaration),
    )
    .await?;
    jury::assign_call(state, &manager, call.id, None).await?;
    // Closed (its deadline 45 days ago), so that the jury reviews: reviews are taken during the
    // review phase only.
    let now = now_ms();
    let (opens_at, closes_at) = (now - 90 * DAY_MS, Some(now - 45 * DAY_MS));
    let call =
        move_dates(state, &manager, &call, DatesBody { opens_at, closes_at, review_ends_at: Some(now + DAY_MS) })
            .await?;
    let disputed = write_reviews(state, &call, &applications, &jurors).await?;
    for (who, text) in DISCUSSION {
        let author = match who {
            Some(index) => &disputed[index],
            None => &manager,
        };
        discussion::post_message(state, author, applications[DISPUTED], text).await?;
    }
    // The review ended yesterday: the call is in deliberation, and decided.
    let review_ends_at = Some(now - DAY_MS);
    let call = move_dates(state, &manager, &call, DatesBody { opens_at, closes_at, review_ends_at }).await?;
    decide(state, &manager, &call).await
}

async fn open_2024(state: &AppState, manager: &Caller) -> AppResult<CallRow> {
    let now = now_ms();
    let body = NewCallBody {
        name: DECIDED.to_owned(),
        instrument: "ia_cluster".to_owned(),
        title_fr: "Pôles IA : première vague (2024)".to_owned(),
        title_en: "AI clusters: first wave (2024)".to_owned(),
        text_fr: "La première vague des pôles d'IA, jugée par un jury international sur quatre critères. \
            *Données fictives pour la démonstration* : les dossiers, les jurés et leurs avis sont inventés."
            .to_owned(),
        text_en: "The first wave of the AI clusters, judged by an international jury on four criteria. \
            *Fictitious data for the demonstration*: the applications, the jurors and their reviews are made up."
            .to_owned(),
        criteria: criteria(),
        scale_max: 5,
        envelope_cents: Cents::from_million_euros(360).get(),
        reviewers_per_application: 3,
        opens_at: now - 90 * DAY_MS,
        closes_at: Some(now + 30 * DAY_MS),
        review_ends_at: Some(now + 60 * DAY_MS),
    };
    crate::calls::new_call(state, manager, body).await
}

/// An account of the demo that nobody logs in to (a random password, never printed), made once;
/// the caller it is.
pub(super) async fn unprinted_account(state: &AppState, email: &str, name: &str) -> AppResult<Caller> {
    if state.db.user_by_email(&Email::parse(email)?).await?.is_none() {
        let password = format!("demo-{}", &caller::new_secret()[..16]);
        let fields = NewUserFields { name: name.to_owned(), email: email.to_owned(), password, organisation_id: None };
        create_user_from(&state.db, fields, "demo").await?;
    }
    caller_by_email(state, email).await
}

/// Creates the jurors' accounts (a random password each, never printed) and invites them.
async fn invite_jury(state: &AppState, manager: &Caller, call: &CallRow) -> AppResult<Vec<Caller>> {
    let mut jurors = Vec::new();
    for juror in &JURORS_2024 {
        unprinted_account(state, juror.email, juror.name).await?;
        let body = NewJurorBody {
            email: juror.email.to_owned(),
            country: juror.country.to_owned(),
            organisation: juror.organisation.to_owned(),
            keywords: juror.keywords.iter().map(|k| (*k).to_owned()).collect(),
        };
        jury::invite_juror(state, manager, call, body).await?;
        jurors.push(caller_by_email(state, juror.email).await?);
    }
    Ok(jurors)
}

/// A juror's score on one criterion of an application, 0 to 5: the application's quality, the
/// juror's leniency, and a spread between criteria.
fn score(application: usize, juror: usize, criterion: usize) -> i64 {
    let spread = ((application + 2 * juror + 3 * criterion) % 3) as f64 * 0.5 - 0.5;
    (QUALITY[application] + LENIENCY[juror] + spread).round().clamp(0.0, 5.0) as i64
}

fn review_body(scores: [i64; 4], confidence: i64) -> ReviewBody {
    let mut by_key = Map::new();
    let mut justifications = Map::new();
    for ((key, texts), score) in JUSTIFICATIONS.iter().zip(scores) {
        by_key.insert((*key).to_owned(), json!(score));
        let text = texts[(score.clamp(2, 4) - 2) as usize];
        justifications.insert((*key).to_owned(), Value::String(text.to_owned()));
    }
    ReviewBody { scores: by_key, justifications, confidence }
}

/// Every assigned juror reviews its applications; on the disputed one, the first marks high and
/// the second low. Returns the disputed application's reviewers.
async fn write_reviews(
    state: &AppState,
    call: &CallRow,
    applications: &[i64],
    jurors: &[Caller],
) -> AppResult<Vec<Caller>> {
    let mut disputed = Vec::new();
    for pair in state.db.assignments(call.id).await? {
        let application = applications.iter().position(|id| *id == pair.application_id);
        let juror = jurors.iter().position(|juror| juror.actor.user_id() == Some(pair.user_id));
        let (Some(application), Some(juror)) = (application, juror) else {
            return Err(AppError::Internal(anyhow::anyhow!("an assignment outside the demo's call")));
        };
        let scores = if application == DISPUTED && disputed.len() < 2 {
            disputed.push(jurors[juror].clone());
            if disputed.len() == 1 { [5, 5, 5, 4] } else { [1, 2, 1, 1] }
        } else {
            [0, 1, 2, 3].map(|criterion| score(application, juror, criterion))
        };
        let confidence = ((application + juror) % 3) as i64 + 3;
        jury::write_review(state, &jurors[juror], pair.application_id, review_body(scores, confidence)).await?;
    }
    if disputed.len() < 2 {
        return Err(AppError::Internal(anyhow::anyhow!("the disputed application has fewer than two reviewers")));
    }
    Ok(disputed)
}

/// The first nine of the ranking selected, the first six for what they asked, the others cut,
/// each within what is left of the envelope; GPU-hours cut as the amount; the rest not.
async fn decide(state: &AppState, manager: &Caller, call: &CallRow) -> AppResult<()> {
    let mut left = call.envelope_cents;
    let mut decisions = Vec::new();
    for (rank, line) in ranking_of(state, call).await?.iter().enumerate() {
        let asked = line.application.requested_cents;
        let wanted = if rank < FULL { asked } else { asked * (100 - CUT_PERCENT) / 100 };
        let amount = wanted.min(left);
        let selected = rank < SELECTED && amount > 0;
        left -= if selected { amount } else { 0 };
        let gpu_hours = (i128::from(line.application.requested_gpu_hours) * i128::from(amount) / i128::from(asked))
            .try_into()
            .unwrap_or(0);
        decisions.push(DecisionBody {
            application: line.application.id,
            selected,
            amount_cents: if selected { amount } else { 0 },
            gpu_hours: if selected { gpu_hours } else { 0 },
        });
    }
    take_decisions(state, manager, call, DecisionsBody { decisions }).await?;
    Ok(())
}
