//! The programme: its instruments, their budget lines and its headline figures, as in the
//! France 2030 announcement (`shared/seed`).

use crate::money::Cents;

/// The Grappe module that runs an instrument; its page lives at `/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    Calls,
    Compute,
    Data,
    Models,
    /// AI as a service: the OpenAI-compatible gateway.
    Ai,
    Challenges,
    Booster,
}

impl Module {
    pub const ALL: [Module; 7] =
        [Module::Calls, Module::Compute, Module::Data, Module::Models, Module::Ai, Module::Challenges, Module::Booster];

    pub fn path(self) -> &'static str {
        match self {
            Module::Calls => "calls",
            Module::Compute => "compute",
            Module::Data => "data",
            Module::Models => "models",
            Module::Ai => "ai",
            Module::Challenges => "challenges",
            Module::Booster => "booster",
        }
    }

    pub fn parse(path: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|module| module.path() == path)
    }
}

/// A budget line as announced: an envelope, and what decisions have committed and paid so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    pub code: &'static str,
    pub label_fr: &'static str,
    pub label_en: &'static str,
    pub envelope: Cents,
    pub committed: Cents,
    pub disbursed: Cents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub code: &'static str,
    pub name_fr: &'static str,
    pub name_en: &'static str,
    pub summary_fr: &'static str,
    pub summary_en: &'static str,
    pub module: Module,
    pub budget_lines: Vec<BudgetLine>,
}

/// A headline figure of the programme that is not a budget line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kpi {
    pub code: &'static str,
    pub label_fr: &'static str,
    pub label_en: &'static str,
    pub value: i64,
    pub unit: &'static str,
    /// The seed says "près de" (nearly): the figure is approximate.
    pub approximate: bool,
}

const fn line(code: &'static str, label_fr: &'static str, label_en: &'static str, envelope: Cents) -> BudgetLine {
    BudgetLine { code, label_fr, label_en, envelope, committed: Cents::ZERO, disbursed: Cents::ZERO }
}

/// The instruments of the France 2030 AI plan with the figures the announcement gives. An
/// instrument whose amount the announcement does not state has no budget line.
pub fn france_2030_instruments() -> Vec<Instrument> {
    vec![
        Instrument {
            code: "ia_cluster",
            name_fr: "IA-cluster",
            name_en: "IA-cluster",
            summary_fr: "Un jury international sélectionne 5 à 10 pôles de formation et de recherche en IA de rang mondial.",
            summary_en: "An international jury selects 5 to 10 world-class AI research and education centres.",
            module: Module::Calls,
            budget_lines: vec![line(
                "ia_cluster",
                "IA-cluster (France 2030)",
                "IA-cluster (France 2030)",
                Cents::from_million_euros(500),
            )],
        },
        Instrument {
            code: "compute",
            name_fr: "Calcul pour tous : Jean Zay et IA-as-a-Service",
            name_en: "Compute for everyone: Jean Zay and AI-as-a-Service",
            summary_fr: "Des heures GPU sur Jean Zay et un cloud souverain pour entraîner et affiner les modèles.",
            summary_en: "GPU-hours on Jean Zay and a sovereign cloud to train and fine-tune models.",
            module: Module::Compute,
            budget_lines: vec![],
        },
        Instrument {
            code: "open_datasets",
            name_fr: "Bases de données ouvertes (appel Bpifrance)",
            name_en: "Open datasets (Bpifrance call)",
            summary_fr: "Des ressources numériques ouvertes pour entraîner et tester des modèles, reflet des spécificités françaises et européennes.",
            summary_en: "Open digital resources to train and test models that reflect French and European specificities.",
            module: Module::Data,
            budget_lines: vec![line(
                "open_datasets",
                "Appel à projets ressources numériques (Bpifrance)",
                "Digital resources call (Bpifrance)",
                Cents::from_million_euros(40),
            )],
        },
        Instrument {
            code: "models",
            name_fr: "Registre des modèles",
            name_en: "Model registry",
            summary_fr: "Les modèles entraînés, avec leur lignée : calcul, modèle de base, versions de données.",
            summary_en: "Trained models with their lineage: compute, base model, dataset versions.",
            module: Module::Models,
            budget_lines: vec![],
        },
        Instrument {
            code: "ia_booster",
            name_fr: "IA Booster France 2030",
            name_en: "IA Booster France 2030",
            summary_fr: "Aider les PME et les ETI à enrichir leur offre et leur compétitivité grâce à l'IA.",
            summary_en: "Helping SMEs and mid-caps improve their offer and competitiveness with AI.",
            module: Module::Booster,
            budget_lines: vec![line(
                "ia_booster",
                "IA Booster France 2030",
                "IA Booster France 2030",
                Cents::from_million_euros(25),
            )],
        },
        Instrument {
            code: "challenge",
            name_fr: "Défi international",
            name_en: "International challenge",
            summary_fr: "Un défi d'ampleur internationale pour faire émerger les meilleures équipes en IA.",
            summary_en: "An international challenge to surface the best AI teams.",
            module: Module::Challenges,
            budget_lines: vec![],
        },
        Instrument {
            code: "national_strategy",
            name_fr: "Stratégie nationale pour l'IA (2018)",
            name_en: "National AI strategy (2018)",
            summary_fr: "Le financement de l'émergence de l'IA sur cinq ans, public et privé.",
            summary_en: "Five years of funding for AI, public and private.",
            module: Module::Calls,
            budget_lines: vec![
                line(
                    "strategy_public",
                    "Stratégie nationale : financements publics",
                    "National strategy: public funding",
                    Cents::from_million_euros(1_500),
                ),
                line(
                    "strategy_private",
                    "Stratégie nationale : cofinancements privés",
                    "National strategy: private co-funding",
                    Cents::from_million_euros(506),
                ),
            ],
        },
    ]
}

pub fn france_2030_kpis() -> Vec<Kpi> {
    vec![
        Kpi {
            code: "strategy_total_cents",
            label_fr: "Stratégie nationale pour l'IA sur cinq ans",
            label_en: "National AI strategy over five years",
            value: Cents::from_million_euros(2_200).get(),
            unit: "cents",
            approximate: true,
        },
        Kpi {
            code: "ia_cluster_centres_min",
            label_fr: "Pôles IA-cluster visés (minimum)",
            label_en: "IA-cluster centres targeted (minimum)",
            value: 5,
            unit: "centres",
            approximate: false,
        },
        Kpi {
            code: "ia_cluster_centres_max",
            label_fr: "Pôles IA-cluster visés (maximum)",
            label_en: "IA-cluster centres targeted (maximum)",
            value: 10,
            unit: "centres",
            approximate: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(code: &str) -> Cents {
        let lines = france_2030_instruments().into_iter().flat_map(|i| i.budget_lines);
        lines.into_iter().find(|l| l.code == code).map(|l| l.envelope).unwrap()
    }

    #[test]
    fn seed_figures_in_cents() {
        assert_eq!(envelope("ia_cluster").get(), 50_000_000_000);
        assert_eq!(envelope("open_datasets").get(), 4_000_000_000);
        assert_eq!(envelope("ia_booster").get(), 2_500_000_000);
        assert_eq!(envelope("strategy_public").get(), 150_000_000_000);
        assert_eq!(envelope("strategy_private").get(), 50_600_000_000);
    }

    #[test]
    fn codes_are_unique_and_modules_round_trip() {
        fn assert_unique(mut codes: Vec<&str>) {
            let count = codes.len();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), count);
        }
        let instruments = france_2030_instruments();
        assert_unique(instruments.iter().map(|i| i.code).collect());
        assert_unique(instruments.iter().flat_map(|i| i.budget_lines.iter().map(|l| l.code)).collect());
        for module in Module::ALL {
            assert_eq!(Module::parse(module.path()), Some(module));
        }
    }
}
