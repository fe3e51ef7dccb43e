//! Affinity between applications and reviewers from their words: TF-IDF vectors (sublinear
//! term frequency, smoothed inverse document frequency over both sides' texts, unit length),
//! compared by cosine. Words are lowercased runs of letters and digits of two characters or
//! more, French and English function words left out; a reviewer's text is their expertise
//! keywords, an application's its title, summary and keywords.

use std::collections::HashMap;

/// Words too common to say anything about a subject.
const STOP_WORDS: [&str; 48] = [
    "au", "aux", "avec", "ce", "ces", "dans", "de", "des", "du", "elle", "en", "et", "il", "la", "le", "les", "leur",
    "par", "pour", "qui", "que", "sur", "un", "une", "est", "son", "sa", "ses", "the", "and", "of", "for", "in", "on",
    "to", "with", "an", "as", "at", "by", "is", "or", "its", "from", "this", "that", "are", "be",
];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
}

/// A document as unit-length TF-IDF weights, by term index, sorted.
type Vector = Vec<(usize, f64)>;

fn vectors(documents: &[&str]) -> Vec<Vector> {
    let mut terms: HashMap<String, usize> = HashMap::new();
    let counts: Vec<HashMap<usize, f64>> = documents
        .iter()
        .map(|document| {
            let mut counts = HashMap::new();
            for word in words(document) {
                let next = terms.len();
                let term = *terms.entry(word).or_insert(next);
                *counts.entry(term).or_insert(0.0) += 1.0;
            }
            counts
        })
        .collect();
    let mut document_frequency = vec![0.0f64; terms.len()];
    for document in &counts {
        for term in document.keys() {
            document_frequency[*term] += 1.0;
        }
    }
    let n = documents.len() as f64;
    counts
        .into_iter()
        .map(|document| {
            let mut vector: Vector = document
                .into_iter()
                .map(|(term, count)| {
                    (term, (1.0 + count.ln()) * ((1.0 + n) / (1.0 + document_frequency[term])).ln() + 1.0)
                })
                .collect();
            let norm = vector.iter().map(|(_, weight)| weight * weight).sum::<f64>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|(_, weight)| *weight /= norm);
            }
            vector.sort_unstable_by_key(|(term, _)| *term);
            vector
        })
        .collect()
}

fn cosine(a: &Vector, b: &Vector) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// The affinity of each application (by position) with each reviewer whose words it shares, at
/// most `per_application` reviewers each (the closest), as (application, reviewer, cosine in
/// [0, 1]); pairs sharing no word are left out (their affinity is 0).
pub fn tf_idf(applications: &[&str], reviewers: &[&str], per_application: usize) -> Vec<(usize, usize, f64)> {
    let all: Vec<&str> = applications.iter().chain(reviewers).copied().collect();
    let vectors = vectors(&all);
    let (apps, revs) = vectors.split_at(applications.len());
    let mut affinity = Vec::new();
    for (a, app) in apps.iter().enumerate() {
        let mut scores: Vec<(usize, f64)> =
            revs.iter().enumerate().map(|(r, rev)| (r, cosine(app, rev))).filter(|(_, s)| *s > 0.0).collect();
        scores.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        scores.truncate(per_application);
        affinity.extend(scores.into_iter().map(|(r, score)| (a, r, score.min(1.0))));
    }
    affinity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_subjects_give_affinity_and_function_words_do_not() {
        let applications = ["IA pour la santé et l'imagerie médicale", "Robotique et IA embarquée pour l'industrie"];
        let reviewers = ["santé, imagerie médicale", "robotique, systèmes embarqués", "la, et, pour"];
        let affinity = tf_idf(&applications, &reviewers, 10);
        let of = |a: usize, r: usize| affinity.iter().find(|(x, y, _)| (*x, *y) == (a, r)).map_or(0.0, |p| p.2);
        assert!(of(0, 0) > of(0, 1), "{affinity:?}");
        assert!(of(1, 1) > of(1, 0), "{affinity:?}");
        assert_eq!(of(0, 2), 0.0, "function words are no subject");
        assert!(affinity.iter().all(|(_, _, s)| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn each_application_keeps_its_closest_reviewers_only() {
        let applications = ["vision"];
        let reviewers = ["vision", "vision robotique", "vision santé robotique"];
        let affinity = tf_idf(&applications, &reviewers, 2);
        assert_eq!(affinity.len(), 2);
        assert_eq!(affinity[0].1, 0, "the closest first: {affinity:?}");
    }
}
