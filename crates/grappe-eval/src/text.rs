//! Text metrics, as sacrebleu 2.6 defines them with its defaults: corpus BLEU (`13a`
//! tokenizer, 4-grams, `exp` smoothing, no lowercasing, brevity penalty over the corpus) and
//! corpus chrF (character 6-grams, no word n-grams, beta 2, whitespace removed, effective order,
//! no epsilon smoothing), both 0-100; and exact match, the fraction of identical strings.
//!
//! N-gram counts are exact: tokens (BLEU) and characters (chrF) become small integers packed
//! into one `u128` per n-gram, sorted per segment, and the clipped matches are counted by
//! merging the sorted lists: no hashing of strings, no collisions.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::Metric;
use crate::classify::check_lengths;
use crate::error::ScoreError;

const BLEU_ORDER: usize = 4;
const CHRF_ORDER: usize = 6;
const CHRF_BETA: f64 = 2.0;

/// Python's `str.isspace`, which `str.split()` splits on: Unicode's White_Space and the
/// separators U+001C to U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Fraction of hypotheses identical to their reference.
pub fn exact_match(references: &[&str], hypotheses: &[&str]) -> Result<f64, ScoreError> {
    check_lengths(Metric::ExactMatch, references.len(), hypotheses.len())?;
    let equal = references.iter().zip(hypotheses).filter(|(reference, hypothesis)| reference == hypothesis).count();
    Ok(equal as f64 / references.len() as f64)
}

/// How many items the sorted `hypothesis` shares with the sorted `reference`, each item counted
/// at most as often as in the reference (clipped counts).
fn clipped_matches(hypothesis: &[u128], reference: &[u128]) -> u64 {
    let (mut h, mut r, mut matches) = (0, 0, 0);
    while h < hypothesis.len() && r < reference.len() {
        match hypothesis[h].cmp(&reference[r]) {
            Ordering::Less => h += 1,
            Ordering::Greater => r += 1,
            Ordering::Equal => {
                matches += 1;
                h += 1;
                r += 1;
            }
        }
    }
    matches
}

/// The n-grams of order `n` of a sequence of small integers, each packed into a `u128` of
/// `bits`-bit digits, sorted.
fn ngrams(symbols: &[u32], n: usize, bits: u32, out: &mut Vec<u128>) {
    out.clear();
    out.extend(symbols.windows(n).map(|window| window.iter().fold(0u128, |key, &s| key << bits | u128::from(s))));
    out.sort_unstable();
}

/// sacrebleu's `13a` tokenizer (mteval-v13a): a few entities decoded, punctuation split off,
/// periods and commas split off unless between digits, dashes after digits split off.
fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    // Each step is one regular expression of sacrebleu, applied left to right without overlap.
    let mut spaced = String::with_capacity(line.len() * 2 + 2);
    for c in format!(" {line} ").chars() {
        if matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/') {
            spaced.extend([' ', c, ' ']);
        } else {
            spaced.push(c);
        }
    }
    // ([^0-9])([\.,]) -> "\1 \2 "
    let spaced =
        substitute_pairs(&spaced, |a, b| !a.is_ascii_digit() && matches!(b, '.' | ','), |a, b| [a, ' ', b, ' ']);
    // ([\.,])([^0-9]) -> " \1 \2"
    let spaced =
        substitute_pairs(&spaced, |a, b| matches!(a, '.' | ',') && !b.is_ascii_digit(), |a, b| [' ', a, ' ', b]);
    // ([0-9])(-) -> "\1 \2 "
    let spaced = substitute_pairs(&spaced, |a, b| a.is_ascii_digit() && b == '-', |a, b| [a, ' ', b, ' ']);
    spaced.split(is_python_space).filter(|token| !token.is_empty()).collect::<Vec<_>>().join(" ")
}

/// `re.sub` of a two-character pattern: leftmost matches, without overlap.
fn substitute_pairs(
    text: &str,
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> [char; 4],
) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(&next) if matches(c, next) => {
                chars.next();
                out.extend(replace(c, next));
            }
            _ => out.push(c),
        }
    }
    out
}

/// Python's `str.rstrip()`.
fn python_rstrip(text: &str) -> &str {
    text.trim_end_matches(is_python_space)
}

/// Tokens of both sides numbered from 1, so that packed n-grams of different tokens differ.
fn number_tokens<'t>(tokens: impl Iterator<Item = &'t str>, numbers: &mut HashMap<&'t str, u32>, out: &mut Vec<u32>) {
    out.clear();
    for token in tokens {
        let next = numbers.len() as u32 + 1;
        out.push(*numbers.entry(token).or_insert(next));
    }
}

/// Corpus BLEU of the hypotheses against one reference each, 0-100.
pub fn bleu(references: &[&str], hypotheses: &[&str]) -> Result<f64, ScoreError> {
    check_lengths(Metric::Bleu, references.len(), hypotheses.len())?;
    let mut correct = [0u64; BLEU_ORDER];
    let mut total = [0u64; BLEU_ORDER];
    let (mut hypothesis_length, mut reference_length) = (0u64, 0u64);
    let (mut hypothesis_ids, mut reference_ids) = (Vec::new(), Vec::new());
    let (mut hypothesis_ngrams, mut reference_ngrams) = (Vec::new(), Vec::new());
    for (reference, hypothesis) in references.iter().zip(hypotheses) {
        let reference = tokenize_13a(python_rstrip(reference));
        let hypothesis = tokenize_13a(python_rstrip(hypothesis));
        // A segment holds fewer than 2^32 tokens (files are under 4 GiB): 32-bit digits.
        let mut numbers = HashMap::new();
        number_tokens(reference.split(' ').filter(|t| !t.is_empty()), &mut numbers, &mut reference_ids);
        number_tokens(hypothesis.split(' ').filter(|t| !t.is_empty()), &mut numbers, &mut hypothesis_ids);
        hypothesis_length += hypothesis_ids.len() as u64;
        reference_length += reference_ids.len() as u64;
        for n in 1..=BLEU_ORDER {
            ngrams(&hypothesis_ids, n, 32, &mut hypothesis_ngrams);
            ngrams(&reference_ids, n, 32, &mut reference_ngrams);
            total[n - 1] += hypothesis_ngrams.len() as u64;
            correct[n - 1] += clipped_matches(&hypothesis_ngrams, &reference_ngrams);
        }
    }
    Ok(bleu_from_counts(&correct, &total, hypothesis_length, reference_length))
}

/// sacrebleu's `BLEU.compute_bleu` with `smooth_method="exp"` and no effective order.
fn bleu_from_counts(correct: &[u64; BLEU_ORDER], total: &[u64; BLEU_ORDER], sys_len: u64, ref_len: u64) -> f64 {
    let brevity_penalty = if sys_len < ref_len {
        if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 }
    } else {
        1.0
    };
    if correct.iter().all(|&count| count == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; BLEU_ORDER];
    let mut smooth = 1.0;
    for n in 0..BLEU_ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    // sacrebleu's `my_log` floors log(0) at -9999999999.
    let log_sum: f64 = precisions.iter().map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() }).sum();
    brevity_penalty * (log_sum / BLEU_ORDER as f64).exp()
}

/// Per character order: hypothesis n-grams, reference n-grams, matches.
type ChrfCounts = [[u64; 3]; CHRF_ORDER];

/// Corpus chrF of the hypotheses against one reference each, 0-100.
pub fn chrf(references: &[&str], hypotheses: &[&str]) -> Result<f64, ScoreError> {
    check_lengths(Metric::Chrf, references.len(), hypotheses.len())?;
    let mut counts: ChrfCounts = [[0; 3]; CHRF_ORDER];
    let (mut hypothesis_chars, mut reference_chars) = (Vec::new(), Vec::new());
    let (mut hypothesis_ngrams, mut reference_ngrams) = (Vec::new(), Vec::new());
    for (reference, hypothesis) in references.iter().zip(hypotheses) {
        // Code points fit in 21 bits: six of them in one u128.
        reference_chars.clear();
        reference_chars.extend(reference.chars().filter(|&c| !is_python_space(c)).map(u32::from));
        hypothesis_chars.clear();
        hypothesis_chars.extend(hypothesis.chars().filter(|&c| !is_python_space(c)).map(u32::from));
        for n in 1..=CHRF_ORDER {
            ngrams(&hypothesis_chars, n, 21, &mut hypothesis_ngrams);
            ngrams(&reference_chars, n, 21, &mut reference_ngrams);
            let order = &mut counts[n - 1];
            // sacrebleu counts the hypothesis' n-grams only where the reference has some.
            if !reference_ngrams.is_empty() {
                order[0] += hypothesis_ngrams.len() as u64;
            }
            order[1] += reference_ngrams.len() as u64;
            order[2] += clipped_matches(&hypothesis_ngrams, &reference_ngrams);
        }
    }
    Ok(chrf_from_counts(&counts))
}

/// sacrebleu's `CHRF._compute_f_score` without epsilon smoothing: precision and recall averaged
/// over the orders where both sides have n-grams, then F-beta.
fn chrf_from_counts(counts: &ChrfCounts) -> f64 {
    let factor = CHRF_BETA * CHRF_BETA;
    let (mut precision_sum, mut recall_sum, mut effective_order) = (0.0, 0.0, 0u32);
    for &[hypothesis, reference, matches] in counts {
        if hypothesis > 0 && reference > 0 {
            precision_sum += matches as f64 / hypothesis as f64;
            recall_sum += matches as f64 / reference as f64;
            effective_order += 1;
        }
    }
    if effective_order == 0 {
        return 0.0;
    }
    let precision = precision_sum / f64::from(effective_order);
    let recall = recall_sum / f64::from(effective_order);
    if precision + recall == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * precision * recall / (factor * precision + recall)
}

#[cfg(test)]
mod tests {
    use super::tokenize_13a;

    #[track_caller]
    fn check(line: &str, expected: &str) {
        assert_eq!(tokenize_13a(line), expected);
    }

    #[test]
    fn tokenizer_13a_splits_as_mteval() {
        check("Hello, world.", "Hello , world .");
        check("3.14 and 1,000 but a.b", "3.14 and 1,000 but a . b");
        check("l’homme « dit » : oui!", "l’homme « dit » : oui !");
        check("2-3 well-known", "2 - 3 well-known");
        check("a &amp; b &lt;c&gt; &quot;q&quot;", "a & b < c > \" q \"");
        check("", "");
        check("x..", "x . .");
    }
}
