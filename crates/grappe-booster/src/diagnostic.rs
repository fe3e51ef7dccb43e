//! The AI-maturity self-diagnostic and its rubric.
//!
//! Seventeen questions over five [`Dimension`]s, each answered on one four-step [`SCALE`]:
//! 0 "not at all", 1 "started", 2 "largely", 3 "fully". Besides them, the company says which
//! class of the EU AI Act its main AI use falls under ([`RiskClass`], "unknown" allowed); the
//! class is not scored: it chooses the compliance recommendation.
//!
//! The rubric, shown as it is on the result page:
//! - a dimension's score is its answers' sum over the most they could sum to, as a percentage
//!   rounded half up: `round(100 * sum / (3 * questions))`, 0 to 100;
//! - the overall score is the mean of the five dimension scores, rounded half up: every
//!   dimension weighs the same whatever its number of questions;
//! - the maturity [`Level`] is the overall score's band: 0-19 discovering, 20-39 exploring,
//!   40-59 experimenting, 60-79 deploying, 80-100 leading.

use std::fmt;

/// A text in the two languages of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    pub fr: &'static str,
    pub en: &'static str,
}

const fn text(fr: &'static str, en: &'static str) -> Text {
    Text { fr, en }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Data,
    Skills,
    UseCases,
    Infrastructure,
    Governance,
}

impl Dimension {
    pub const ALL: [Dimension; 5] =
        [Dimension::Data, Dimension::Skills, Dimension::UseCases, Dimension::Infrastructure, Dimension::Governance];

    /// The stable name, in the API and the database.
    pub fn key(self) -> &'static str {
        match self {
            Dimension::Data => "data",
            Dimension::Skills => "skills",
            Dimension::UseCases => "use_cases",
            Dimension::Infrastructure => "infrastructure",
            Dimension::Governance => "governance",
        }
    }

    pub fn name(self) -> Text {
        match self {
            Dimension::Data => text("Données", "Data"),
            Dimension::Skills => text("Compétences", "Skills"),
            Dimension::UseCases => text("Cas d'usage", "Use cases"),
            Dimension::Infrastructure => text("Infrastructure", "Infrastructure"),
            Dimension::Governance => text("Gouvernance et conformité", "Governance and compliance"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub struct Question {
    /// The stable name: `data.quality`.
    pub id: &'static str,
    pub dimension: Dimension,
    pub text: Text,
}

const fn question(id: &'static str, dimension: Dimension, fr: &'static str, en: &'static str) -> Question {
    Question { id, dimension, text: text(fr, en) }
}

/// The answers' scale, from 0 to [`MAX_ANSWER`].
pub const SCALE: [Text; 4] = [
    text("Pas du tout", "Not at all"),
    text("Commencé", "Started"),
    text("En bonne partie", "Largely"),
    text("Entièrement", "Fully"),
];
pub const MAX_ANSWER: u8 = 3;

use Dimension::{Data, Governance, Infrastructure, Skills, UseCases};

/// The questionnaire, dimension by dimension.
pub const QUESTIONS: [Question; 17] = [
    question(
        "data.inventory",
        Data,
        "Vos données utiles (clients, production, documents) sont-elles recensées et accessibles ?",
        "Are your useful data (customers, production, documents) listed and accessible?",
    ),
    question(
        "data.quality",
        Data,
        "Leur qualité est-elle suivie (complétude, erreurs, doublons) ?",
        "Is their quality tracked (completeness, errors, duplicates)?",
    ),
    question(
        "data.history",
        Data,
        "Gardez-vous assez d'historique pour entraîner ou évaluer un modèle ?",
        "Do you keep enough history to train or evaluate a model?",
    ),
    question(
        "data.rights",
        Data,
        "Savez-vous sur quelle base (RGPD, contrats, licences) vous pouvez les utiliser ?",
        "Do you know on what basis (GDPR, contracts, licences) you may use them?",
    ),
    question(
        "skills.team",
        Skills,
        "Des personnes de l'entreprise savent-elles mener un projet de données ou d'IA ?",
        "Can people in the company run a data or AI project?",
    ),
    question(
        "skills.training",
        Skills,
        "Vos équipes sont-elles formées aux usages et aux limites de l'IA ?",
        "Are your teams trained in the uses and limits of AI?",
    ),
    question(
        "skills.partners",
        Skills,
        "Travaillez-vous avec des partenaires en IA (laboratoire, centre, prestataire) ?",
        "Do you work with AI partners (a lab, a centre, a provider)?",
    ),
    question(
        "use_cases.identified",
        UseCases,
        "Avez-vous identifié des cas d'usage de l'IA liés à votre activité ?",
        "Have you identified AI use cases tied to your business?",
    ),
    question(
        "use_cases.value",
        UseCases,
        "Leur valeur attendue (gain, coût, délai) est-elle estimée ?",
        "Is their expected value (gain, cost, time) estimated?",
    ),
    question(
        "use_cases.deployed",
        UseCases,
        "Un cas d'usage est-il en test ou en production ?",
        "Is a use case being tested or in production?",
    ),
    question(
        "infrastructure.tools",
        Infrastructure,
        "Vos données sont-elles dans des outils d'où on peut les extraire (export, API) ?",
        "Are your data in tools you can extract them from (export, API)?",
    ),
    question(
        "infrastructure.compute",
        Infrastructure,
        "Avez-vous accès à la puissance de calcul nécessaire (GPU, cloud) ?",
        "Do you have access to the compute you need (GPUs, cloud)?",
    ),
    question(
        "infrastructure.security",
        Infrastructure,
        "Sécurité et sauvegardes sont-elles en place pour ces données et systèmes ?",
        "Are security and backups in place for these data and systems?",
    ),
    question(
        "governance.owner",
        Governance,
        "Une personne est-elle responsable des usages de l'IA et de leurs risques ?",
        "Is someone responsible for AI uses and their risks?",
    ),
    question(
        "governance.ai_act",
        Governance,
        "Vos usages ont-ils été classés selon les niveaux de risque de l'AI Act ?",
        "Have your uses been classified by the AI Act's risk levels?",
    ),
    question(
        "governance.transparency",
        Governance,
        "Les personnes concernées savent-elles quand elles échangent avec une IA ?",
        "Are people told when they interact with an AI?",
    ),
    question(
        "governance.oversight",
        Governance,
        "Les décisions d'un système d'IA sont-elles vérifiées par une personne ?",
        "Are an AI system's decisions checked by a person?",
    ),
];

/// The EU AI Act's (Regulation (EU) 2024/1689) risk classes of an AI use, and "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskClass {
    /// Prohibited practices (Article 5).
    Unacceptable,
    /// Annex III uses and regulated products (Article 6): conformity assessment, risk
    /// management, data governance, human oversight.
    High,
    /// Transparency obligations (Article 50): chatbots, generated content.
    Limited,
    /// No obligation beyond voluntary codes of conduct.
    Minimal,
    Unknown,
}

impl RiskClass {
    pub const ALL: [RiskClass; 5] =
        [RiskClass::Unacceptable, RiskClass::High, RiskClass::Limited, RiskClass::Minimal, RiskClass::Unknown];

    pub fn key(self) -> &'static str {
        match self {
            RiskClass::Unacceptable => "unacceptable",
            RiskClass::High => "high",
            RiskClass::Limited => "limited",
            RiskClass::Minimal => "minimal",
            RiskClass::Unknown => "unknown",
        }
    }

    pub fn name(self) -> Text {
        match self {
            RiskClass::Unacceptable => {
                text("Risque inacceptable (pratique interdite)", "Unacceptable risk (prohibited)")
            }
            RiskClass::High => text("Haut risque", "High risk"),
            RiskClass::Limited => text("Risque limité (obligations de transparence)", "Limited risk (transparency)"),
            RiskClass::Minimal => text("Risque minimal", "Minimal risk"),
            RiskClass::Unknown => text("Je ne sais pas", "I don't know"),
        }
    }

    pub fn parse(raw: &str) -> Result<RiskClass, DiagnosticError> {
        RiskClass::ALL
            .into_iter()
            .find(|class| class.key() == raw.trim())
            .ok_or_else(|| DiagnosticError::RiskClass(raw.chars().take(40).collect()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagnosticError {
    #[error("the questionnaire is incomplete: no answer to {}", .0.join(", "))]
    Incomplete(Vec<&'static str>),
    #[error("`{0}` is not a question of the diagnostic")]
    UnknownQuestion(String),
    #[error("`{question}`: the answer {value} is out of range (0 to 3)")]
    OutOfRange { question: &'static str, value: i64 },
    #[error("`{0}` is answered twice")]
    Twice(&'static str),
    #[error("`ai_act_class` must be one of unacceptable, high, limited, minimal, unknown, not `{0}`")]
    RiskClass(String),
}

/// A whole questionnaire's answers, each in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    /// In the order of [`QUESTIONS`].
    values: [u8; QUESTIONS.len()],
    risk_class: RiskClass,
}

impl Answers {
    /// Answers by question id; every question once, each from 0 to [`MAX_ANSWER`].
    pub fn parse<'a>(
        answers: impl IntoIterator<Item = (&'a str, i64)>,
        risk_class: &str,
    ) -> Result<Answers, DiagnosticError> {
        let mut values = [None; QUESTIONS.len()];
        for (id, value) in answers {
            let Some(at) = QUESTIONS.iter().position(|question| question.id == id) else {
                return Err(DiagnosticError::UnknownQuestion(id.chars().take(60).collect()));
            };
            let question = QUESTIONS[at].id;
            let value = u8::try_from(value)
                .ok()
                .filter(|value| *value <= MAX_ANSWER)
                .ok_or(DiagnosticError::OutOfRange { question, value })?;
            if values[at].replace(value).is_some() {
                return Err(DiagnosticError::Twice(question));
            }
        }
        let missing: Vec<&'static str> = QUESTIONS
            .iter()
            .zip(values)
            .filter(|(_, value)| value.is_none())
            .map(|(question, _)| question.id)
            .collect();
        if !missing.is_empty() {
            return Err(DiagnosticError::Incomplete(missing));
        }
        let risk_class = RiskClass::parse(risk_class)?;
        Ok(Answers { values: values.map(|value| value.unwrap_or(0)), risk_class })
    }

    /// Each question with its answer, in the questionnaire's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Question, u8)> + '_ {
        QUESTIONS.iter().zip(self.values.iter().copied())
    }

    pub fn risk_class(&self) -> RiskClass {
        self.risk_class
    }

    /// The rubric of the module comment.
    pub fn scores(&self) -> Scores {
        let mut sums = [0u32; 5];
        let mut counts = [0u32; 5];
        for (question, value) in self.iter() {
            sums[question.dimension.index()] += u32::from(value);
            counts[question.dimension.index()] += 1;
        }
        let mut values = [0u8; 5];
        for (at, value) in values.iter_mut().enumerate() {
            let most = u32::from(MAX_ANSWER) * counts[at];
            // Half up: (2 * 100 * sum + most) / (2 * most).
            *value = u8::try_from((200 * sums[at] + most) / (2 * most.max(1))).unwrap_or(100);
        }
        Scores { values }
    }
}

/// A diagnostic's five dimension scores, each 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores {
    values: [u8; 5],
}

impl Scores {
    /// Scores as stored, in the order of [`Dimension::ALL`]; none if one is above 100.
    pub fn from_values(values: [i64; 5]) -> Option<Scores> {
        let mut out = [0u8; 5];
        for (slot, value) in out.iter_mut().zip(values) {
            *slot = u8::try_from(value).ok().filter(|value| *value <= 100)?;
        }
        Some(Scores { values: out })
    }

    pub fn get(&self, dimension: Dimension) -> u8 {
        self.values[dimension.index()]
    }

    /// The mean of the five, rounded half up.
    pub fn overall(&self) -> u8 {
        let sum: u32 = self.values.iter().map(|value| u32::from(*value)).sum();
        u8::try_from((2 * sum + 5) / 10).unwrap_or(100)
    }

    pub fn level(&self) -> Level {
        match self.overall() {
            0..=19 => Level::Discovering,
            20..=39 => Level::Exploring,
            40..=59 => Level::Experimenting,
            60..=79 => Level::Deploying,
            _ => Level::Leading,
        }
    }
}

/// The maturity level, from the overall score's band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Discovering,
    Exploring,
    Experimenting,
    Deploying,
    Leading,
}

impl Level {
    pub fn key(self) -> &'static str {
        match self {
            Level::Discovering => "discovering",
            Level::Exploring => "exploring",
            Level::Experimenting => "experimenting",
            Level::Deploying => "deploying",
            Level::Leading => "leading",
        }
    }

    pub fn name(self) -> Text {
        match self {
            Level::Discovering => text("Découverte", "Discovering"),
            Level::Exploring => text("Exploration", "Exploring"),
            Level::Experimenting => text("Expérimentation", "Experimenting"),
            Level::Deploying => text("Déploiement", "Deploying"),
            Level::Leading => text("Maîtrise", "Leading"),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(value: i64) -> Vec<(&'static str, i64)> {
        QUESTIONS.iter().map(|question| (question.id, value)).collect()
    }

    fn check(answers: &[(&str, i64)], risk: &str, expected: Result<([u8; 5], u8, Level), DiagnosticError>) {
        let got = Answers::parse(answers.iter().copied(), risk).map(|answers| {
            let scores = answers.scores();
            (Dimension::ALL.map(|dimension| scores.get(dimension)), scores.overall(), scores.level())
        });
        assert_eq!(got, expected);
    }

    #[test]
    fn every_dimension_has_three_or_four_questions_with_unique_ids() {
        for dimension in Dimension::ALL {
            let count = QUESTIONS.iter().filter(|question| question.dimension == dimension).count();
            assert!((3..=4).contains(&count), "{dimension:?}: {count}");
        }
        let mut ids: Vec<_> = QUESTIONS.iter().map(|question| question.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), QUESTIONS.len());
        assert!(QUESTIONS.iter().all(|question| question.id.starts_with(question.dimension.key())));
    }

    #[test]
    fn the_rubric() {
        check(&all(0), "minimal", Ok(([0; 5], 0, Level::Discovering)));
        check(&all(3), "high", Ok(([100; 5], 100, Level::Leading)));
        check(&all(2), "limited", Ok(([67; 5], 67, Level::Deploying)));
        let mut mixed = all(1);
        // Data: 3 + 3 + 1 + 1 = 8 of 12, 66.7 -> 67; skills 1 of 3 each: 33.3 -> 33.
        mixed[0].1 = 3;
        mixed[1].1 = 3;
        check(&mixed, "unknown", Ok(([67, 33, 33, 33, 33], 40, Level::Experimenting)));
    }

    #[test]
    fn errors_name_the_question() {
        let mut answers = all(1);
        answers.pop();
        answers.remove(0);
        check(&answers, "minimal", Err(DiagnosticError::Incomplete(vec!["data.inventory", "governance.oversight"])));
        assert_eq!(
            DiagnosticError::Incomplete(vec!["data.inventory"]).to_string(),
            "the questionnaire is incomplete: no answer to data.inventory"
        );
        let mut answers = all(1);
        answers[3].1 = 4;
        check(&answers, "minimal", Err(DiagnosticError::OutOfRange { question: "data.rights", value: 4 }));
        answers[3].1 = -1;
        check(&answers, "minimal", Err(DiagnosticError::OutOfRange { question: "data.rights", value: -1 }));
        let mut answers = all(1);
        answers.push(("data.colour", 1));
        check(&answers, "minimal", Err(DiagnosticError::UnknownQuestion("data.colour".into())));
        let mut answers = all(1);
        answers.push(("skills.team", 1));
        check(&answers, "minimal", Err(DiagnosticError::Twice("skills.team")));
        check(&all(1), "medium", Err(DiagnosticError::RiskClass("medium".into())));
    }

    #[test]
    fn stored_scores() {
        assert!(Scores::from_values([0, 50, 100, 10, 20]).is_some());
        assert_eq!(Scores::from_values([0, 50, 101, 10, 20]), None);
        assert_eq!(Scores::from_values([0, -1, 100, 10, 20]), None);
    }
}
