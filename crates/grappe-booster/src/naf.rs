//! NAF rev. 2, INSEE's classification of activities: the 732 sub-classes (`62.01Z`) in 21
//! sections (A to U), embedded from `data/` (see its README for source and licence).

use std::sync::LazyLock;

/// One sub-class of NAF rev. 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naf {
    /// As INSEE writes it: `62.01Z`.
    pub code: &'static str,
    /// `A` to `U`.
    pub section: char,
    /// INSEE's label, in French.
    pub label: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NafError {
    #[error("a NAF code is written like 62.01Z (2 digits, a dot, 2 digits, a letter), not `{0}`")]
    Shape(String),
    #[error("{0} is not a NAF rev. 2 code")]
    Unknown(String),
}

static SUBCLASSES: LazyLock<Vec<Naf>> = LazyLock::new(|| {
    include_str!("../data/naf-rev2.tsv")
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (code, section, label) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Naf { code, section: section.chars().next()?, label })
        })
        .collect()
});

static SECTIONS: LazyLock<Vec<(char, &'static str)>> = LazyLock::new(|| {
    include_str!("../data/naf-sections.tsv")
        .lines()
        .filter_map(|line| {
            let (section, label) = line.split_once('\t')?;
            Some((section.chars().next()?, label))
        })
        .collect()
});

/// The sub-class of a code typed `62.01Z`, `6201Z` or `62.01z` (spaces around ignored).
pub fn lookup(raw: &str) -> Result<Naf, NafError> {
    let typed = raw.trim();
    let compact: String = typed.chars().filter(|c| *c != '.').collect::<String>().to_ascii_uppercase();
    let bytes = compact.as_bytes();
    let shaped = bytes.len() == 5
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4].is_ascii_uppercase()
        && typed.chars().filter(|c| *c == '.').count() <= 1;
    if !shaped {
        return Err(NafError::Shape(typed.chars().take(40).collect()));
    }
    let code = format!("{}.{}", &compact[..2], &compact[2..]);
    SUBCLASSES.binary_search_by(|naf| naf.code.cmp(&code)).map(|at| SUBCLASSES[at]).map_err(|_| NafError::Unknown(code))
}

/// A section's label (`J`: `INFORMATION ET COMMUNICATION`); none outside A to U.
pub fn section_label(section: char) -> Option<&'static str> {
    SECTIONS.iter().find(|(code, _)| *code == section).map(|(_, label)| *label)
}

/// The sections, A to U, with their labels.
pub fn sections() -> &'static [(char, &'static str)] {
    &SECTIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_list_is_embedded_and_sorted() {
        assert_eq!(SUBCLASSES.len(), 732);
        assert!(SUBCLASSES.windows(2).all(|pair| pair[0].code < pair[1].code));
        assert_eq!(sections().len(), 21);
        assert!(SUBCLASSES.iter().all(|naf| section_label(naf.section).is_some() && !naf.label.contains('\n')));
        assert_eq!(section_label('J'), Some("INFORMATION ET COMMUNICATION"));
        assert_eq!(section_label('V'), None);
    }

    #[test]
    fn codes() {
        for typed in ["62.01Z", "6201Z", " 62.01z "] {
            let naf = lookup(typed).expect(typed);
            assert_eq!((naf.code, naf.section), ("62.01Z", 'J'));
            assert_eq!(naf.label, "Programmation informatique");
        }
        assert_eq!(lookup("88.99A").map(|naf| naf.label.contains("hébergement d’enfants")), Ok(true));
        assert_eq!(lookup("62.01A"), Err(NafError::Unknown("62.01A".into())));
        assert_eq!(lookup("99.99Z"), Err(NafError::Unknown("99.99Z".into())));
        assert_eq!(lookup("62.0.1Z"), Err(NafError::Shape("62.0.1Z".into())));
        assert_eq!(lookup("6201"), Err(NafError::Shape("6201".into())));
        assert_eq!(lookup(""), Err(NafError::Shape(String::new())));
        assert_eq!(lookup("é2.01Z"), Err(NafError::Shape("é2.01Z".into())));
    }
}
