//! What the compute service records in words (a job's reason, its timeline's details), in the
//! reader's language. The records keep one stable English form, which the API returns and
//! scripts match; pages read them through [`in_words`], which knows every form the service
//! writes (`grappe-db`'s `compute.rs`, the scheduler, the engine's reasons) and shows anything
//! else as it is. An actor (`user:5`, `key:3`) is shown by name.

use std::collections::HashMap;

use crate::kit::i18n::{Locale, Tr};

/// People's names by the actor strings the records hold (`user:ID`).
pub type Actors = HashMap<String, String>;

/// The user ids a text names as actors, to look their names up once for a page.
pub fn actor_ids(text: &str) -> Option<i64> {
    let actor = text.strip_prefix("cancel requested by ").or_else(|| text.strip_prefix("by "))?;
    actor.strip_prefix("user:")?.parse().ok()
}

/// `text`, recorded by the compute service, in `locale`'s words.
pub fn in_words(locale: Locale, actors: &Actors, text: &str) -> String {
    let say = |fr: &str, en: &str| locale.pick(fr, en).to_owned();
    // French puts a space before a colon.
    let colon = locale.pick(" :", ":");
    let actor = |actor: &str| match actor.strip_prefix("key:") {
        Some(key) => format!("{} {key}", say("la clé", "key")),
        None => actors.get(actor).cloned().unwrap_or_else(|| actor.to_owned()),
    };
    let whole = match text {
        "submitted" => Some(say("soumise", "submitted")),
        "time limit reached" => Some(say("durée maximale atteinte", "time limit reached")),
        "preempted" => Some(say("préemptée", "preempted")),
        "cancelled" => Some(say("annulée", "cancelled")),
        "out of memory" => Some(say("mémoire épuisée", "out of memory")),
        "Priority" => Some(say(
            "priorité : des tâches plus prioritaires passent d'abord",
            "Priority: jobs of higher priority go first",
        )),
        "Resources" => Some(say(
            "ressources : pas assez de CPU, GPU ou mémoire libres",
            "Resources: not enough free CPUs, GPUs or memory",
        )),
        "AllocationExhausted" => Some(say(
            "allocation épuisée : priorité la plus basse",
            "AllocationExhausted: the allocation is used up, lowest priority",
        )),
        "QosLimit" => Some(say("limite de la QoS", "QosLimit: more than its QoS allows")),
        "TooLarge" => Some(say("trop grande : aucun nœud ne peut la recevoir", "TooLarge: no node can ever hold it")),
        "Dependency" => {
            Some(say("dépendance : attend la fin d'autres tâches", "Dependency: waits for other jobs to end"))
        }
        "AllocationPeriod" => {
            Some(say("hors de la période de l'allocation", "AllocationPeriod: outside the allocation's dates"))
        }
        _ => None,
    };
    if let Some(whole) = whole {
        return whole;
    }
    let recurse = |inner: &str| in_words(locale, actors, inner);
    if let Some(rest) = text.strip_prefix("exit code ") {
        return match rest.split_once(": ") {
            Some((code, reason)) => format!("{} {code}{colon} {}", say("code de sortie", "exit code"), recurse(reason)),
            None => format!("{} {rest}", say("code de sortie", "exit code")),
        };
    }
    if let Some(rest) = text.strip_prefix("run ") {
        let (run, detail) = rest.split_once(", sandbox: ").unwrap_or((rest, ""));
        let mut shown = format!("{} {run}", say("exécution", "run"));
        if let Some((sandbox, limits)) = detail.split_once("; limits: ") {
            shown.push_str(&format!(
                ", {}{colon} {sandbox}{} {}{colon} {limits}",
                say("bac à sable", "sandbox"),
                locale.pick(" ;", ";"),
                say("limites", "limits")
            ));
        }
        return shown;
    }
    let prefixed: [(&str, &str, &str); 9] = [
        ("cancel requested by ", "annulation demandée par", "cancellation requested by"),
        ("by ", "par", "by"),
        ("submitted to Slurm as job ", "soumise à Slurm comme tâche", "submitted to Slurm as job"),
        ("requeued, restart ", "remise en file, redémarrage", "requeued, restart"),
        ("preempted for job ", "préemptée pour la tâche", "preempted for job"),
        ("killed by signal ", "tuée par le signal", "killed by signal"),
        (
            "the command could not be started: ",
            "la commande n'a pas pu démarrer :",
            "the command could not be started:",
        ),
        ("sbatch refused the job: ", "sbatch a refusé la tâche :", "sbatch refused the job:"),
        ("out of memory (its limit is ", "mémoire épuisée (sa limite est de", "out of memory (its limit is"),
    ];
    for (english, fr, en) in prefixed {
        if let Some(rest) = text.strip_prefix(english) {
            let rest = match english {
                "cancel requested by " | "by " => actor(rest),
                "killed by signal " => {
                    rest.replace(" from outside Grappe", locale.pick(" venu d'hors de Grappe", " from outside Grappe"))
                }
                "out of memory (its limit is " => rest.replace(" MB)", locale.pick(" Mo)", " MB)")),
                _ => rest.to_owned(),
            };
            return format!("{} {rest}", say(fr, en));
        }
    }
    if let Some(rest) = text.strip_prefix("DependencyNeverSatisfied: job ") {
        let (job, why) = rest.split_once(' ').unwrap_or((rest, ""));
        let why = match why.strip_prefix("ended ") {
            Some(state) => {
                format!("{} {}", say("s'est terminée :", "ended"), Tr { locale }.t(&format!("state-{state}")))
            }
            None => say("n'existe plus", "is gone"),
        };
        return format!(
            "{} {job} {why}",
            say("dépendance jamais satisfaite : la tâche", "dependency never satisfied: job")
        );
    }
    if let Some(reason) = text.strip_prefix("cancelled while stopping (").and_then(|rest| rest.strip_suffix(')')) {
        return format!("{} ({})", say("annulée pendant son arrêt", "cancelled while stopping"), recurse(reason));
    }
    if let Some(state) = text.strip_prefix("requeued by Slurm (").and_then(|rest| rest.strip_suffix(')')) {
        return format!("{} ({state})", say("remise en file par Slurm", "requeued by Slurm"));
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_the_service_writes_reads_in_french_and_actors_by_name() {
        let actors: Actors = [("user:5".to_owned(), "Camille Martin".to_owned())].into();
        let fr = |text: &str| in_words(Locale::Fr, &actors, text);
        assert_eq!(fr("submitted"), "soumise");
        assert_eq!(fr("exit code 0"), "code de sortie 0");
        assert_eq!(fr("exit code 137: time limit reached"), "code de sortie 137 : durée maximale atteinte");
        assert_eq!(fr("cancel requested by user:5"), "annulation demandée par Camille Martin");
        assert_eq!(fr("by key:3"), "par la clé 3");
        assert_eq!(
            fr("run 2, sandbox: bubblewrap as root; limits: cgroup v1"),
            "exécution 2, bac à sable : bubblewrap as root ; limites : cgroup v1"
        );
        assert_eq!(
            fr("cancelled while stopping (preempted for job 9)"),
            "annulée pendant son arrêt (préemptée pour la tâche 9)"
        );
        assert_eq!(fr("out of memory (its limit is 512 MB)"), "mémoire épuisée (sa limite est de 512 Mo)");
        assert_eq!(fr("killed by signal 9 from outside Grappe"), "tuée par le signal 9 venu d'hors de Grappe");
        assert_eq!(fr("Priority"), "priorité : des tâches plus prioritaires passent d'abord");
        assert_eq!(fr("something new"), "something new", "an unknown form as it is");
        assert_eq!(
            fr("DependencyNeverSatisfied: job 4 ended failed"),
            "dépendance jamais satisfaite : la tâche 4 s'est terminée : en échec"
        );
        assert_eq!(fr("Dependency"), "dépendance : attend la fin d'autres tâches");
        let en = in_words(Locale::En, &actors, "cancel requested by user:5");
        assert_eq!(en, "cancellation requested by Camille Martin");
        assert_eq!(actor_ids("cancel requested by user:5"), Some(5));
        assert_eq!(actor_ids("by user:12"), Some(12));
        assert_eq!(actor_ids("by admin"), None);
    }
}
