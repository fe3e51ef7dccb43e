//! Demo content: the France 2030 programme, a few organisations, one account per role with a
//! fresh password at every start, printed by the server in demo mode only, datasets, a project,
//! a challenge, and calls for proposals (`demo/calls.rs`).

mod booster;
mod calls;

use grappe_domain::account::{OrganisationProfile, Role, RoleGrant, Scope};
use grappe_domain::programme::Programme;

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
    if let Err(refused) = state.db.load_programme(&Programme::france_2030(), "demo").await? {
        return Err(AppError::Conflict(crate::programme::refusal(&refused)));
    }
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
    demo_dataset(state, COMMUNES).await?;
    demo_dataset(state, CODE_DU_TRAVAIL).await?;
    let project = demo_project(state).await?;
    demo_challenge(state, project).await?;
    calls::load(state).await?;
    demo_payments(state).await?;
    demo_centres(state).await?;
    booster::load(state).await?;
    Ok(accounts)
}

/// The demo's centres with a profile, three of them with two academic years of training, so
/// that the centres' pages and the dashboard's "specialists trained" come from records; a
/// profile already written is kept as it is.
async fn demo_centres(state: &AppState) -> AppResult<()> {
    use grappe_domain::centre::{Profile, Training};
    const CITIES: [(&str, &str); 9] = [
        ("Sorbonne Université", "Paris"),
        ("Université Clermont Auvergne", "Clermont-Ferrand"),
        ("Université PSL", "Paris"),
        ("Université de Bordeaux", "Bordeaux"),
        ("Université de Lille", "Lille"),
        ("Université de Lorraine", "Nancy"),
        ("Université de Montpellier", "Montpellier"),
        ("Université de Strasbourg", "Strasbourg"),
        ("Université de Toulouse", "Toulouse"),
    ];
    const OFFER: [(&str, &str, i64, [i64; 2]); 4] = [
        ("technician", "Technicien·ne en science des données", 30, [24, 29]),
        ("master", "Master Intelligence artificielle", 60, [52, 58]),
        ("phd", "Programme doctoral en IA", 25, [18, 22]),
        ("continuing", "IA pour les métiers (formation continue)", 120, [64, 97]),
    ];
    for (i, centre) in state.db.centres().await?.iter().enumerate() {
        if !centre.profile.city.is_empty() {
            continue;
        }
        let city = CITIES.iter().find(|(name, _)| *name == centre.organisation).map_or("", |(_, city)| city);
        let profile = Profile::parse(
            city,
            &format!("{} porte le pôle «\u{a0}{}\u{a0}».", centre.organisation, centre.title),
            &format!("{} runs the centre \"{}\".", centre.organisation, centre.title),
            &centre.profile.partners,
            &centre.profile.themes,
        )?;
        state.db.save_centre_profile(centre.id, &profile, "demo").await?;
        if i >= 3 {
            continue;
        }
        for (level, title, places, enrolled) in OFFER {
            for (year, enrolled) in [2024, 2025].into_iter().zip(enrolled) {
                let training = Training::parse(level, title, year, places, enrolled)?;
                state.db.save_training(centre.id, &training, "demo").await?;
            }
        }
    }
    Ok(())
}

/// A first instalment (30 %) paid to the first three centres the decided call selected, so that
/// the dashboard's disbursed figure comes from records; a payment already there (its
/// reference) is kept as it is.
async fn demo_payments(state: &AppState) -> AppResult<()> {
    let today = grappe_domain::calendar::iso_date(grappe_db::now_ms());
    for commitment in state.db.commitments(Some("ia_cluster")).await?.iter().rev().take(3) {
        let reference = format!("DEMO-{}-1", commitment.application_id);
        let payment = grappe_db::NewPayment {
            application_id: commitment.application_id,
            amount_cents: commitment.amount_cents * 3 / 10,
            paid_on: &today,
            reference: &reference,
        };
        match state.db.record_payment(&payment, "demo").await? {
            Ok(_) | Err(grappe_db::PaymentRefused::DuplicateReference) => {}
            Err(refused) => return Err(AppError::Conflict(format!("demo payment: {refused:?}"))),
        }
    }
    Ok(())
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
    if state.db.challenge_by_name(NAME).await?.is_some() {
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

/// The demo's training: the built-in recipe on the Code du travail, as a job of the demo
/// project's member, writing its model and its predictions for the challenge's test.
const TRAINING: [&str; 13] = [
    "grappe",
    "train",
    "text-classifier",
    "--train",
    "$GRAPPE_INPUTS/code-du-travail/train.csv",
    "--test",
    "$GRAPPE_INPUTS/code-du-travail/test.csv",
    "--predictions",
    "predictions.csv",
    "--out",
    "model",
    "--epochs",
    "10",
];
const TRAINING_NAME: &str = "entrainement-demo";
const MODEL: &str = "classifieur-code-du-travail";
const MODEL_CARD: &str = "# Classifieur du Code du travail\n\n\
    Régression logistique sur des n-grammes de mots et de caractères hachés (recette intégrée \
    `grappe train text-classifier`), entraînée sur les 3 000 articles du jeu `code-du-travail` : \
    elle donne la partie du code d'un article d'après son texte.\n\n\
    Logistic regression on hashed word and character n-grams (Grappe's built-in recipe), trained \
    on the `code-du-travail` dataset: the part of the French labour code an article belongs to.\n";

/// The demo project (its id), for the demo's project member and coordinator, with the demo's
/// training job queued once; then, in the background, its model registered and its predictions
/// submitted to the challenge once it completed.
async fn demo_project(state: &AppState) -> AppResult<i64> {
    const NAME: &str = "demo-llm-finetune";
    let member_email = grappe_domain::account::Email::parse("project-member@demo.grappe.fr")?;
    let Some(member) = state.db.user_by_email(&member_email).await? else {
        return Err(anyhow::anyhow!("the demo's project member is missing").into());
    };
    let project = match state.db.project_by_name(NAME).await? {
        Some(project) => project,
        None => {
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
            let caller = caller::caller_of_user(state, member.clone()).await?;
            let inputs = crate::data::inputs::resolve_inputs(state, &caller, &["code-du-travail".to_owned()]).await?;
            let command = vec!["sh".to_owned(), "-c".to_owned(), TRAINING.join(" ")];
            let body = crate::compute::NewJobBody {
                name: Some(TRAINING_NAME.to_owned()),
                gpus: Some(0),
                ..crate::compute::NewJobBody::made_by_server(project.id, command, 1800)
            };
            crate::compute::queue(state, Some(member.id), &project, body, &inputs).await?;
            demo_language_model(state, &member, &project, &inputs).await?;
            project
        }
    };
    let jobs = state.db.list_jobs(Some(&[project.id]), i64::MAX, 1000).await?;
    let first = |name: &str| jobs.iter().filter(|job| job.name == name).min_by_key(|job| job.id).map(|job| job.id);
    if let Some(job) = first(LANGUAGE_MODEL_TRAINING) {
        tokio::spawn(follow_language_model(state.clone(), member.clone(), project.clone(), job));
    }
    if let Some(job) = first(TRAINING_NAME) {
        tokio::spawn(follow_training(state.clone(), member, job));
    }
    Ok(project.id)
}

/// The built-in language model: trained by a job on the first articles of the Code du travail,
/// registered in the model registry (public), and served by another job through the gateway
/// as `grappe-lm`, for the demo project's keys; its keys may fine-tune it.
const LANGUAGE_MODEL: &str = "grappe-lm";
const LANGUAGE_MODEL_TRAINING: &str = "entrainement-grappe-lm";
const LANGUAGE_MODEL_TRAINING_SCRIPT: &str = "head -n 400 \"$GRAPPE_INPUTS/code-du-travail/train.csv\" > articles.txt \
    && exec grappe train language-model --text articles.txt --out lm --epochs 1 --name grappe-lm";

async fn demo_language_model(
    state: &AppState,
    member: &grappe_db::UserRow,
    project: &grappe_db::ProjectRow,
    inputs: &str,
) -> AppResult<()> {
    let command = vec!["sh".to_owned(), "-c".to_owned(), LANGUAGE_MODEL_TRAINING_SCRIPT.to_owned()];
    let body = crate::compute::NewJobBody {
        name: Some(LANGUAGE_MODEL_TRAINING.to_owned()),
        gpus: Some(0),
        memory_mb: 512,
        ..crate::compute::NewJobBody::made_by_server(project.id, command, 1800)
    };
    crate::compute::queue(state, Some(member.id), project, body, inputs).await?;
    Ok(())
}

/// Once the language model's training completed: registered as `grappe-lm` version 1, public,
/// and served through the gateway. Each step only once, across restarts.
async fn publish_language_model(
    state: &AppState,
    member: grappe_db::UserRow,
    project: &grappe_db::ProjectRow,
    job: &grappe_db::JobRow,
) -> AppResult<()> {
    let caller = caller::caller_of_user(state, member.clone()).await?;
    let model = match state.db.model(LANGUAGE_MODEL).await? {
        Some(model) => model,
        None => {
            let body = crate::models::NewModelBody {
                name: LANGUAGE_MODEL.to_owned(),
                project: project.id,
                public: true,
                card: LANGUAGE_MODEL_CARD.to_owned(),
            };
            crate::models::new_model(state, &caller, body).await?
        }
    };
    let version = match state.db.model_versions(model.id).await?.pop() {
        Some(first) => first,
        None => {
            let output = crate::models::JobOutput {
                job,
                path: "lm",
                base_version_id: None,
                card: None,
                created_by: Some(member.id),
            };
            crate::models::record_job_output(state, &model, &output, "demo").await?
        }
    };
    let served = grappe_db::NewGatewayModel {
        name: LANGUAGE_MODEL,
        upstream: None,
        project_id: Some(project.id),
        input_gpu_ms_per_1k: 10,
        output_gpu_ms_per_1k: 40,
        max_output_tokens: 512,
        // As `grappe model serve` answers at once by default.
        max_concurrency: 4,
        version_id: Some(version.id),
        recipe: None,
    };
    let longest = crate::gateway::served::SERVING_LONGEST_S;
    crate::gateway::served::serve_version(state, &served, project, Some(member.id), &version, longest, "demo").await?;
    Ok(())
}

const LANGUAGE_MODEL_CARD: &str = "# grappe-lm\n\n\
    Petit modèle de langue neuronal sur les octets (recette intégrée `grappe train language-model`), \
    entraîné sur les 400 premiers articles du jeu `code-du-travail` : il sert à essayer la passerelle \
    d'IA en tant que service et l'affinage (`/v1/fine_tuning/jobs`), pas à répondre juste.\n\n\
    A small byte-level neural language model (Grappe's built-in recipe), trained on the first 400 \
    articles of the `code-du-travail` dataset: for trying the AI-as-a-service gateway and \
    fine-tuning, not an assistant.\n";

/// Waits for a job to end: the job if it completed.
async fn completed(state: &AppState, job_id: i64) -> Option<grappe_db::JobRow> {
    loop {
        match state.db.job(job_id).await {
            Ok(Some(job)) if crate::compute::terminal(&job.state) => {
                if job.state != "completed" {
                    tracing::warn!(job.id = job_id, state = %job.state, "a demo job did not complete");
                    return None;
                }
                return Some(job);
            }
            Ok(Some(_)) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            _ => return None,
        }
    }
}

async fn follow_language_model(
    state: AppState,
    member: grappe_db::UserRow,
    project: grappe_db::ProjectRow,
    job_id: i64,
) {
    let Some(job) = completed(&state, job_id).await else { return };
    if let Err(error) = publish_language_model(&state, member, &project, &job).await {
        tracing::warn!(error = %error, "the demo's language model was not published");
    }
}

/// Once the demo's training job completed: its model registered (public), and its predictions
/// submitted to the demo challenge by the member's team. Each step only once, across restarts.
async fn follow_training(state: AppState, member: grappe_db::UserRow, job_id: i64) {
    let Some(job) = completed(&state, job_id).await else { return };
    if let Err(error) = chain(&state, member, &job).await {
        tracing::warn!(error = %error, "the demo's model or submission failed");
    }
}

async fn chain(state: &AppState, member: grappe_db::UserRow, job: &grappe_db::JobRow) -> AppResult<()> {
    let caller = caller::caller_of_user(state, member).await?;
    let model = match state.db.model(MODEL).await? {
        Some(model) => model,
        None => {
            let body = crate::models::NewModelBody {
                name: MODEL.to_owned(),
                project: job.project_id,
                public: true,
                card: MODEL_CARD.to_owned(),
            };
            crate::models::new_model(state, &caller, body).await?
        }
    };
    if state.db.model_versions(model.id).await?.is_empty() {
        let body = crate::models::NewVersionBody { job: job.id, path: "model".to_owned(), base: None, card: None };
        crate::models::register_version(state, &caller, MODEL, body).await?;
    }
    let Some(challenge) = state.db.challenge_by_name("code-du-travail").await? else {
        return Ok(());
    };
    let user = caller.actor.user_id().unwrap_or_default();
    let team = match state.db.team_of(challenge.id, user).await? {
        Some(team) => team,
        None => {
            let body = crate::challenges::NewTeamBody { name: "Équipe démo".to_owned(), baseline: false };
            crate::challenges::new_team(state, &caller, &challenge, body).await?
        }
    };
    if state.db.team_submissions(team.id).await?.is_empty() {
        let output = crate::challenges::JobOutput {
            job: job.id,
            path: "predictions.csv".to_owned(),
            note: "grappe train text-classifier".to_owned(),
        };
        crate::challenges::submit_job_output(state, &caller, &challenge, &output).await?;
    }
    Ok(())
}
