//! Recommendations from a diagnostic: one for each weak dimension, weakest first, and one for the
//! AI Act class, each pointing at the platform's resources.
//!
//! A dimension is weak below [`WEAK_BELOW`]; at most [`MOST_DIMENSIONS`] are named (ties in the
//! order of [`Dimension::ALL`]). A company strong everywhere still gets its weakest dimension's
//! advice, to go further. The AI Act advice comes last, except for a prohibited use, which
//! comes first: nothing else matters before it stops.

use crate::diagnostic::{Dimension, RiskClass, Scores, Text};

/// A dimension scoring below this is weak.
pub const WEAK_BELOW: u8 = 60;
/// The most dimensions the advice names.
pub const MOST_DIMENSIONS: usize = 3;

/// What the platform offers, each with its page (the server writes the links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// The data commons' datasets (`/data`).
    Datasets,
    /// A small GPU allocation: a support request to the Booster's rolling call.
    Compute,
    /// The AI centres, their expertise and training (`/centres`).
    Centres,
    /// The model registry (`/models`).
    Models,
    /// The AI-as-a-Service gateway (`/ai`).
    Gateway,
}

impl Resource {
    pub fn key(self) -> &'static str {
        match self {
            Resource::Datasets => "datasets",
            Resource::Compute => "compute",
            Resource::Centres => "centres",
            Resource::Models => "models",
            Resource::Gateway => "gateway",
        }
    }
}

/// Why a recommendation is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Weak(Dimension),
    AiAct(RiskClass),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    pub reason: Reason,
    pub text: Text,
    pub resources: &'static [Resource],
}

fn for_dimension(dimension: Dimension) -> Recommendation {
    let (text, resources): (Text, &'static [Resource]) = match dimension {
        Dimension::Data => (
            Text {
                fr: "Recensez vos données et leur base juridique, puis partez des jeux de données ouverts du commun de données de votre secteur pour un premier prototype.",
                en: "List your data and their legal basis, then start a first prototype from the open datasets of the data commons in your sector.",
            },
            &[Resource::Datasets, Resource::Centres],
        ),
        Dimension::Skills => (
            Text {
                fr: "Formez une personne référente : les centres IA proposent des formations du technicien à l'ingénieur, et leurs experts accompagnent un premier projet.",
                en: "Train a lead person: the AI centres offer training from technician to engineer, and their experts support a first project.",
            },
            &[Resource::Centres],
        ),
        Dimension::UseCases => (
            Text {
                fr: "Testez un cas d'usage concret en quelques jours avec les modèles du registre et la passerelle IA, avant d'investir.",
                en: "Try one concrete use case in a few days with the registry's models and the AI gateway, before investing.",
            },
            &[Resource::Models, Resource::Gateway],
        ),
        Dimension::Infrastructure => (
            Text {
                fr: "Demandez une petite allocation de calcul (heures GPU) à l'appel permanent IA Booster plutôt que d'acheter du matériel.",
                en: "Ask the IA Booster rolling call for a small compute allocation (GPU-hours) rather than buying hardware.",
            },
            &[Resource::Compute, Resource::Gateway],
        ),
        Dimension::Governance => (
            Text {
                fr: "Nommez une personne responsable des usages de l'IA, classez-les selon l'AI Act et prévoyez une vérification humaine ; les experts d'un centre peuvent vous y aider.",
                en: "Name a person responsible for AI uses, classify them under the AI Act and plan human oversight; a centre's experts can help.",
            },
            &[Resource::Centres],
        ),
    };
    Recommendation { reason: Reason::Weak(dimension), text, resources }
}

fn for_risk_class(class: RiskClass) -> Recommendation {
    let text = match class {
        RiskClass::Unacceptable => Text {
            fr: "L'usage décrit relève d'une pratique interdite par l'AI Act (article 5) : arrêtez-le avant tout autre projet et faites-vous conseiller.",
            en: "The use described is a practice the AI Act prohibits (Article 5): stop it before any other project and seek advice.",
        },
        RiskClass::High => Text {
            fr: "Usage à haut risque : prévoyez l'évaluation de conformité, la gestion des risques, la gouvernance des données et le contrôle humain exigés par l'AI Act ; un centre peut vous accompagner.",
            en: "High-risk use: plan the conformity assessment, risk management, data governance and human oversight the AI Act requires; a centre can support you.",
        },
        RiskClass::Limited => Text {
            fr: "Risque limité : informez les personnes qu'elles échangent avec une IA et signalez les contenus générés (article 50).",
            en: "Limited risk: tell people they are interacting with an AI and label generated content (Article 50).",
        },
        RiskClass::Minimal => Text {
            fr: "Risque minimal : aucune obligation particulière ; un code de conduite volontaire reste une bonne pratique.",
            en: "Minimal risk: no specific obligation; a voluntary code of conduct remains good practice.",
        },
        RiskClass::Unknown => Text {
            fr: "Classez d'abord vos usages selon les niveaux de risque de l'AI Act : les obligations en dépendent.",
            en: "First classify your uses by the AI Act's risk levels: your obligations depend on it.",
        },
    };
    Recommendation { reason: Reason::AiAct(class), text, resources: &[Resource::Centres] }
}

/// The recommendations for a diagnostic's scores and AI Act class, in the order to read them.
pub fn recommend(scores: &Scores, class: RiskClass) -> Vec<Recommendation> {
    let mut dimensions = Dimension::ALL.to_vec();
    // Stable: ties keep the order of `Dimension::ALL`.
    dimensions.sort_by_key(|dimension| scores.get(*dimension));
    let weak: Vec<Dimension> = dimensions
        .iter()
        .copied()
        .filter(|dimension| scores.get(*dimension) < WEAK_BELOW)
        .take(MOST_DIMENSIONS)
        .collect();
    let named = if weak.is_empty() { vec![dimensions[0]] } else { weak };
    let mut out: Vec<Recommendation> = named.into_iter().map(for_dimension).collect();
    let ai_act = for_risk_class(class);
    if class == RiskClass::Unacceptable {
        out.insert(0, ai_act);
    } else {
        out.push(ai_act);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(values: [i64; 5], class: RiskClass) -> Vec<Reason> {
        let scores = Scores::from_values(values).expect("in range");
        recommend(&scores, class).into_iter().map(|recommendation| recommendation.reason).collect()
    }

    #[test]
    fn weakest_first_then_the_ai_act() {
        use Dimension::*;
        assert_eq!(
            reasons([50, 10, 90, 30, 59], RiskClass::High),
            [Reason::Weak(Skills), Reason::Weak(Infrastructure), Reason::Weak(Data), Reason::AiAct(RiskClass::High)]
        );
        assert_eq!(
            reasons([80, 90, 70, 60, 100], RiskClass::Minimal),
            [Reason::Weak(Infrastructure), Reason::AiAct(RiskClass::Minimal)]
        );
        assert_eq!(
            reasons([0, 0, 0, 0, 0], RiskClass::Unacceptable),
            [Reason::AiAct(RiskClass::Unacceptable), Reason::Weak(Data), Reason::Weak(Skills), Reason::Weak(UseCases)]
        );
    }

    #[test]
    fn every_recommendation_points_somewhere() {
        for dimension in Dimension::ALL {
            assert!(!for_dimension(dimension).resources.is_empty());
        }
        assert!(for_dimension(Dimension::Infrastructure).resources.contains(&Resource::Compute));
        assert!(for_dimension(Dimension::Data).resources.contains(&Resource::Datasets));
    }
}
