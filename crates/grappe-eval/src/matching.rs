//! Predictions matched to the truth by id.
//!
//! Three ways, fastest first, with the same errors:
//! - same ids in the same order, visibly unique (strictly increasing, as numbers or as text):
//!   one linear pass;
//! - ids that are one shared prefix and a number (`17`, `row-0042`), written without leading
//!   zeros or all with the same number of digits, so that equal numbers are equal ids, over a
//!   range at most `DENSE_SLACK` times the rows: a table indexed by the number;
//! - otherwise a hash map of borrowed slices, seeded per process so that crafted ids cannot
//!   force collisions.
//!
//! The result maps each prediction row to its truth row, so that values are read in file order
//! on both sides and only written out of order.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;

use crate::error::{ScoreError, shorten};
use crate::table::Table;

/// No row.
const NONE: u32 = u32::MAX;

/// The numeric index is used when the ids' numbers span at most this many times the rows.
const DENSE_SLACK: u64 = 4;

/// At most 18 digits: the number fits in a u64 with room for the span arithmetic.
const MAX_DIGITS: usize = 18;

pub(crate) struct Matched<'a> {
    pub(crate) truth: &'a Table,
    pub(crate) predictions: &'a Table,
    /// For each prediction row, its truth row; `None` when they are in the same order.
    truth_rows: Option<Vec<u32>>,
}

impl<'a> Matched<'a> {
    pub(crate) fn new(truth: &'a Table, predictions: &'a Table) -> Result<Matched<'a>, ScoreError> {
        if truth.is_empty() {
            return Err(ScoreError::File {
                role: truth.role(),
                line: None,
                problem: "no rows after the header".to_owned(),
            });
        }
        // Files of 4 GiB hold fewer than u32::MAX rows, and NONE stays free.
        for table in [truth, predictions] {
            if table.len() >= NONE as usize {
                return Err(ScoreError::File { role: table.role(), line: None, problem: "too many rows".to_owned() });
            }
        }
        if aligned_and_unique(truth, predictions) {
            return Ok(Matched { truth, predictions, truth_rows: None });
        }
        let index = match NumericIds::index(truth)? {
            Some(numeric) => Index::Numeric(numeric),
            None => Index::Hash(hash_index(truth)?),
        };
        // One bit per truth row, small enough to stay in cache: the line of a first duplicate
        // is looked up again only for the message.
        let mut taken = vec![0u64; truth.len().div_ceil(64)];
        let mut truth_rows = Vec::with_capacity(predictions.len());
        for (row, id) in predictions.ids().enumerate() {
            let row = row as u32;
            let found = match &index {
                Index::Numeric(numeric) => numeric.find(id),
                Index::Hash(map) => map.get(id).copied(),
            };
            let Some(truth_row) = found else {
                return Err(predictions.row_error(row, "no such id in the truth".to_owned()));
            };
            let (word, bit) = (truth_row as usize / 64, 1u64 << (truth_row % 64));
            if taken[word] & bit != 0 {
                let first = truth_rows.iter().position(|&other| other == truth_row).unwrap_or_default();
                let first_line = predictions.line(first as u32);
                return Err(predictions.row_error(row, format!("duplicate id, first on line {first_line}")));
            }
            taken[word] |= bit;
            truth_rows.push(truth_row);
        }
        if truth_rows.len() < truth.len() {
            let missing = (0..truth.len() as u32)
                .find(|&row| taken[row as usize / 64] & (1 << (row % 64)) == 0)
                .unwrap_or_default();
            return Err(ScoreError::MissingId { truth_line: truth.line(missing), id: shorten(truth.id(missing)) });
        }
        Ok(Matched { truth, predictions, truth_rows: Some(truth_rows) })
    }

    /// The truth row matched to a prediction row.
    pub(crate) fn truth_row(&self, prediction_row: u32) -> u32 {
        match &self.truth_rows {
            None => prediction_row,
            Some(truth_rows) => truth_rows[prediction_row as usize],
        }
    }

    /// One value per truth row, in the truth's order: `read` of each truth value, then of each
    /// prediction value (read in the predictions' order, placed at its truth row).
    pub(crate) fn read<T: Clone + Default>(
        &self,
        mut read: impl FnMut(&'a Table, u32, &'a str) -> Result<T, ScoreError>,
    ) -> Result<(Vec<T>, Vec<T>), ScoreError> {
        let truth: Vec<T> = self
            .truth
            .values()
            .enumerate()
            .map(|(row, text)| read(self.truth, row as u32, text))
            .collect::<Result<_, _>>()?;
        let mut predictions = vec![T::default(); truth.len()];
        for (row, text) in self.predictions.values().enumerate() {
            let row = row as u32;
            predictions[self.truth_row(row) as usize] = read(self.predictions, row, text)?;
        }
        Ok((truth, predictions))
    }
}

enum Index<'a> {
    Numeric(NumericIds<'a>),
    Hash(HashMap<&'a str, u32, RandomState>),
}

fn hash_index(truth: &Table) -> Result<HashMap<&str, u32, RandomState>, ScoreError> {
    let mut index = HashMap::with_capacity_and_hasher(truth.len(), RandomState::default());
    for (row, id) in truth.ids().enumerate() {
        match index.entry(id) {
            Entry::Occupied(first) => {
                let first_line = truth.line(*first.get());
                return Err(truth.row_error(row as u32, format!("duplicate id, first on line {first_line}")));
            }
            Entry::Vacant(slot) => {
                slot.insert(row as u32);
            }
        }
    }
    Ok(index)
}

/// An id as a prefix and the number its trailing digits write.
fn split_number(id: &str) -> Option<(&str, &str, u64)> {
    let digits_from = id.bytes().rposition(|byte| !byte.is_ascii_digit()).map_or(0, |position| position + 1);
    let (prefix, digits) = id.split_at(digits_from);
    if digits.is_empty() || digits.len() > MAX_DIGITS {
        return None;
    }
    let number = digits.bytes().fold(0u64, |number, digit| number * 10 + u64::from(digit - b'0'));
    Some((prefix, digits, number))
}

fn has_leading_zero(digits: &str) -> bool {
    digits.len() > 1 && digits.starts_with('0')
}

/// The truth's ids as numbers after one shared prefix, indexed in a table.
struct NumericIds<'a> {
    prefix: &'a str,
    lowest: u64,
    /// No leading zeros anywhere: then equal numbers are equal ids. Otherwise every id has
    /// `width` digits, which makes them so too.
    canonical: bool,
    width: usize,
    rows: usize,
    /// Truth row by number minus `lowest`; none when the truth's numbers are `lowest`,
    /// `lowest + 1`... in file order, the common case, where the row is the number's offset.
    slots: Option<Vec<u32>>,
}

impl<'a> NumericIds<'a> {
    /// `None` when the ids are not all of the shape, or spread too thin.
    fn index(truth: &'a Table) -> Result<Option<NumericIds<'a>>, ScoreError> {
        let mut ids = truth.ids();
        let Some((prefix, first_digits, first)) = ids.next().and_then(split_number) else { return Ok(None) };
        let (mut lowest, mut highest, mut canonical, width) =
            (first, first, !has_leading_zero(first_digits), first_digits.len());
        let mut same_width = true;
        // Whether the numbers so far are `first`, `first + 1`...: then `first` is the lowest.
        let mut consecutive = true;
        for (row, id) in ids.enumerate() {
            let Some((id_prefix, digits, number)) = split_number(id) else { return Ok(None) };
            consecutive &= number.checked_sub(first) == Some(row as u64 + 1);
            if id_prefix != prefix {
                return Ok(None);
            }
            canonical &= !has_leading_zero(digits);
            same_width &= digits.len() == width;
            if !canonical && !same_width {
                return Ok(None);
            }
            lowest = lowest.min(number);
            highest = highest.max(number);
        }
        let span = highest - lowest + 1;
        if span > DENSE_SLACK * truth.len() as u64 + 1024 {
            return Ok(None);
        }
        if consecutive {
            return Ok(Some(NumericIds { prefix, lowest, canonical, width, rows: truth.len(), slots: None }));
        }
        let mut slots = vec![NONE; span as usize];
        for (row, id) in truth.ids().enumerate() {
            let Some((_, _, number)) = split_number(id) else { return Ok(None) };
            let slot = &mut slots[(number - lowest) as usize];
            if *slot != NONE {
                let first_line = truth.line(*slot);
                return Err(truth.row_error(row as u32, format!("duplicate id, first on line {first_line}")));
            }
            *slot = row as u32;
        }
        Ok(Some(NumericIds { prefix, lowest, canonical, width, rows: truth.len(), slots: Some(slots) }))
    }

    fn find(&self, id: &str) -> Option<u32> {
        let (prefix, digits, number) = split_number(id)?;
        let same_shape = prefix == self.prefix
            && if self.canonical { !has_leading_zero(digits) } else { digits.len() == self.width };
        if !same_shape || number < self.lowest {
            return None;
        }
        let offset = usize::try_from(number - self.lowest).ok()?;
        match &self.slots {
            None => u32::try_from(offset).ok().filter(|&row| row != NONE && offset < self.rows),
            Some(slots) => slots.get(offset).copied().filter(|&row| row != NONE),
        }
    }
}

/// Same ids in the same order, and strictly increasing (as decimal numbers written without
/// leading zeros compare: shorter first; or as text), hence unique.
fn aligned_and_unique(truth: &Table, predictions: &Table) -> bool {
    if truth.len() != predictions.len() {
        return false;
    }
    let mut by_length = true;
    let mut by_text = true;
    let mut previous: Option<&str> = None;
    for (truth_id, prediction_id) in truth.ids().zip(predictions.ids()) {
        if truth_id != prediction_id {
            return false;
        }
        if let Some(previous) = previous {
            by_text &= previous < truth_id;
            by_length &= (previous.len(), previous) < (truth_id.len(), truth_id);
            if !by_text && !by_length {
                return false;
            }
        }
        previous = Some(truth_id);
    }
    true
}
