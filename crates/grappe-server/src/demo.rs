//! Demo content: the France 2030 programme, a few organisations, and one account per role with a
//! fresh password at every start, printed by the server in demo mode only.

use grappe_domain::account::{OrganisationProfile, Role, RoleGrant, Scope};
use grappe_domain::programme::{france_2030_instruments, france_2030_kpis};

use crate::account::api::{NewUserFields, create_user_from};
use crate::kit::caller;
use grappe_store::{DatasetPath, Name, Splits};

use crate::kit::error::{AppError, AppResult};
use crate::kit::state::AppState;

pub struct DemoAccount {
    pub role: Role,
    pub email: String,
    pub password: String,
}

const ORGANISATIONS: [(&str, &str, Option<&str>); 4] = [
    ("Université Paris-Saclay", "university", None),
    ("Inria", "lab", None),
    ("Occitanie Vision (PME)", "company", Some("sme")),
    ("GENCI", "public_body", None),
];

pub async fn load(state: &AppState) -> AppResult<Vec<DemoAccount>> {
    state.db.load_programme(&france_2030_instruments(), &france_2030_kpis()).await?;
    for (name, kind, size_class) in ORGANISATIONS {
        if state.db.organisation_by_name(name).await?.is_none() {
            state.db.create_organisation(name, OrganisationProfile::parse(kind, size_class)?).await?;
        }
    }
    let mut accounts = Vec::new();
    for role in Role::ALL {
        let email = format!("{}@demo.grappe.fr", role.as_str().replace('_', "-"));
        let password = format!("demo-{}", &caller::new_secret()[..16]);
        let parsed_email = grappe_domain::account::Email::parse(&email)?;
        let user = match state.db.user_by_email(&parsed_email).await? {
            Some(user) => {
                let hash = caller::hash_password(grappe_domain::account::Password::parse(&password)?).await?;
                state.db.set_password_hash(user.id, &hash, "demo").await?;
                user
            }
            None => {
                let name = format!("Demo {}", role.as_str().replace('_', " "));
                let fields =
                    NewUserFields { name, email: email.clone(), password: password.clone(), organisation_id: None };
                create_user_from(&state.db, fields, "demo").await?
            }
        };
        // Roles that may be global are granted globally; those over one object, over the demo's
        // (the project's below; none yet for calls and challenges).
        if role.may_be_global() {
            state.db.grant_role(user.id, &RoleGrant { role: *role, scope: Scope::Global }, "demo").await?;
        }
        accounts.push(DemoAccount { role: *role, email, password });
    }
    let project = demo_project(state).await?;
    demo_dataset(state, COMMUNES).await?;
    demo_dataset(state, CODE_DU_TRAVAIL).await?;
    demo_challenge(state, project).await?;
    Ok(accounts)
}

/// The communes of France (INSEE's COG 2026, Licence Ouverte; see `demo/datasets/NOTICE.md`).
const COMMUNES: (&str, &[(&str, &[u8])], &str) = (
    "communes-france",
    &[
        ("train.csv", include_bytes!("../../../demo/datasets/communes-france/train.csv")),
        ("validation.csv", include_bytes!("../../../demo/datasets/communes-france/validation.csv")),
        ("test.csv", include_bytes!("../../../demo/datasets/communes-france/test.csv")),
    ],
    include_str!("../../../demo/datasets/communes-france.md"),
);

/// Articles of the Code du travail by part (DILA's LEGI base, Licence Ouverte; see
/// `demo/datasets/NOTICE.md`): the demo challenge's data. Its test labels are not in it.
const CODE_DU_TRAVAIL: (&str, &[(&str, &[u8])], &str) = (
    "code-du-travail",
    &[
        ("train.csv", include_bytes!("../../../demo/datasets/code-du-travail/train.csv")),
        ("test.csv", include_bytes!("../../../demo/datasets/code-du-travail/test.csv")),
    ],
    include_str!("../../../demo/datasets/code-du-travail.md"),
);

/// The demo challenge's hidden test labels.
const CODE_DU_TRAVAIL_LABELS: &str = include_str!("../../../demo/challenges/code-du-travail-labels.csv");

/// A dataset shipped in the binary (`name`, its files, each its own split, and its card),
/// published as a public dataset of the programme.
async fn demo_dataset(
    state: &AppState,
    (name, files, card): (&'static str, &'static [(&'static str, &'static [u8])], &'static str),
) -> AppResult<()> {
    let dataset = match state.db.dataset(name).await? {
        Some(dataset) => dataset,
        None => {
            let new = grappe_db::NewDataset { name, project_id: None, public: true, created_by: None };
            state.db.create_dataset(&new, "demo").await?
        }
    };
    let folder = state.config.data_dir.join("demo").join(name);
    let store = state.store.clone();
    let (version, checked, id) = crate::kit::stored::blocking(move || {
        let build = || -> anyhow::Result<_> {
            std::fs::create_dir_all(&folder)?;
            let mut splits = Splits::new();
            for (path, bytes) in files {
                std::fs::write(folder.join(path), bytes)?;
                let split = Name::parse(path.trim_end_matches(".csv"))?;
                splits.entry(split).or_default().insert(DatasetPath::parse(path)?);
            }
            let (committed, _) = store.push_dir(&folder, &Name::parse(name)?, card.to_owned(), splits)?;
            Ok((store.version(&committed.id)?, committed.id))
        };
        let (version, id) = build().map_err(AppError::Internal)?;
        let checked = crate::data::validate::check(&store, &version, true)?;
        Ok((version, checked, id))
    })
    .await?;
    crate::data::publish(state, &dataset, &version, &checked, id, None, "demo").await?;
    Ok(())
}

/// The demo challenge on the Code du travail, organised by the demo's challenge organiser, open
/// for thirty days from its creation, code submissions run on the demo project; with a
/// baseline (every article in the most frequent part of the training set).
async fn demo_challenge(state: &AppState, project: i64) -> AppResult<()> {
    const NAME: &str = "code-du-travail";
    if state.db.challenges(1000).await?.iter().any(|c| c.name == NAME) {
        return Ok(());
    }
    let email = grappe_domain::account::Email::parse("challenge-organiser@demo.grappe.fr")?;
    let Some(user) = state.db.user_by_email(&email).await? else { return Ok(()) };
    let organiser = caller::caller_of_user(state, user).await?;
    let now = grappe_db::now_ms();
    let body = crate::challenges::NewChallengeBody {
        name: NAME.to_owned(),
        title: "Le Code du travail, partie par partie".to_owned(),
        description: "Retrouvez la **partie** du Code du travail (parmi huit) de chaque article, d'après son seul texte. \
            Les données d'entraînement et les textes du test sont dans le jeu `code-du-travail` ; les étiquettes du test \
            sont cachées. Soumettez un fichier `id,label`, ou du code qui écrit `predictions.csv` sans réseau.\n\n\
            Find the **part** of the French labour code (among eight) of each article from its text alone."
            .to_owned(),
        dataset: NAME.to_owned(),
        metric: "f1_macro".to_owned(),
        labels: CODE_DU_TRAVAIL_LABELS.to_owned(),
        public_percent: 30,
        phases: vec![crate::challenges::Phase {
            name: "Phase unique".to_owned(),
            starts_at: now - 3_600_000,
            ends_at: now + 30 * grappe_db::DAY_MS,
        }],
        per_day: 5,
        total: 100,
        team_size: 4,
        ladder_step: None,
        code: Some(crate::challenges::CodeResources { project, cpus: 1, memory_mb: 1024, time_limit_s: 900 }),
    };
    let (challenge, _) = crate::challenges::new_challenge(state, &organiser, body).await?;
    let team = crate::challenges::NewTeamBody { name: "Référence".to_owned(), baseline: true };
    crate::challenges::new_team(state, &organiser, &challenge, team).await?;
    let mut baseline = String::from("id,label\n");
    for line in CODE_DU_TRAVAIL_LABELS.lines().skip(1) {
        let id = line.split(',').next().unwrap_or_default();
        baseline.push_str(&format!("{id},sante-securite\n"));
    }
    crate::challenges::submit_predictions(state, &organiser, &challenge, baseline.as_bytes(), "classe majoritaire")
        .await?;
    Ok(())
}

/// A project for the demo's project member, with a short "training" job that prints a falling
/// loss as metrics, so that the compute pages have something to show.
/// The demo project's id.
async fn demo_project(state: &AppState) -> AppResult<i64> {
    const NAME: &str = "demo-llm-finetune";
    if let Some(project) = state.db.project_by_name(NAME).await? {
        return Ok(project.id);
    }
    let new = grappe_db::NewProject {
        name: NAME,
        gpu_hours: 1000,
        cpu_hours: 20_000,
        storage_gb: 500,
        valid_from: None,
        valid_until: None,
        principal_investigator: None,
    };
    let project = state.db.create_project(&new, "demo").await?;
    let scope = Scope::Object { kind: grappe_domain::account::ScopeKind::Project, id: project.id };
    let people = [
        ("project-member@demo.grappe.fr", &[Role::ProjectMember][..]),
        ("project-coordinator@demo.grappe.fr", &[Role::ProjectMember, Role::ProjectCoordinator][..]),
        // The demo challenge runs code submissions on this project.
        ("challenge-organiser@demo.grappe.fr", &[Role::ProjectMember][..]),
    ];
    for (email, roles) in people {
        if let Some(user) = state.db.user_by_email(&grappe_domain::account::Email::parse(email)?).await? {
            for role in roles {
                state.db.grant_role(user.id, &RoleGrant { role: *role, scope: scope.clone() }, "demo").await?;
            }
        }
    }
    let script = "for step in $(seq 1 30); do \
        echo \"step $step\"; \
        echo \"GRAPPE_METRIC {\\\"key\\\": \\\"loss\\\", \\\"value\\\": $(awk -v s=$step 'BEGIN { print 3 / (1 + s / 4) }'), \\\"step\\\": $step}\"; \
        sleep 0.2; done";
    let command = serde_json::to_string(&["sh", "-c", script]).map_err(anyhow::Error::from)?;
    let job = grappe_db::NewJob {
        project_id: project.id,
        user_id: None,
        name: "fine-tune (demo)",
        command: &command,
        qos: "dev",
        cpus: 1,
        gpus: 0,
        memory_mb: 512,
        time_limit_s: 600,
        env: "{}",
        network: false,
        nodes: 1,
        inputs: "[]",
    };
    let quota = grappe_db::QueueQuota { per_user: i64::MAX, per_project: i64::MAX };
    state.db.create_job(job, quota).await?.ok(); // no quota: always queued
    Ok(project.id)
}
