//! Predictions matched to the truth by id.
//!
//! The common case, predictions written in the truth's order with ids that are visibly unique
//! (strictly increasing, as numbers or as text), is checked in one linear pass with no hash
//! map. Otherwise the truth's ids go into a hash map of borrowed slices (seeded per process,
//! so crafted ids cannot force collisions) and each prediction finds its partner there.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;

use crate::error::{ScoreError, shorten};
use crate::table::Table;

/// No partner yet.
const NONE: u32 = u32::MAX;

pub(crate) struct Matched<'a> {
    pub(crate) truth: &'a Table,
    pub(crate) predictions: &'a Table,
    /// For each truth row, its prediction row; `None` when they are in the same order.
    partners: Option<Vec<u32>>,
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
        // Row indices are u32, and NONE is reserved: files of 4 GiB hold fewer rows.
        if truth.len() >= NONE as usize || predictions.len() >= NONE as usize {
            return Err(ScoreError::File { role: truth.role(), line: None, problem: "too many rows".to_owned() });
        }
        if aligned_and_unique(truth, predictions) {
            return Ok(Matched { truth, predictions, partners: None });
        }
        let mut index: HashMap<&str, u32, RandomState> =
            HashMap::with_capacity_and_hasher(truth.len(), RandomState::default());
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
        let mut partners = vec![NONE; truth.len()];
        for (row, id) in predictions.ids().enumerate() {
            let row = row as u32;
            let Some(&truth_row) = index.get(id) else {
                return Err(predictions.row_error(row, "no such id in the truth".to_owned()));
            };
            let partner = &mut partners[truth_row as usize];
            if *partner != NONE {
                let first_line = predictions.line(*partner);
                return Err(predictions.row_error(row, format!("duplicate id, first on line {first_line}")));
            }
            *partner = row;
        }
        if let Some(missing) = partners.iter().position(|&partner| partner == NONE) {
            let missing = missing as u32;
            return Err(ScoreError::MissingId { truth_line: truth.line(missing), id: shorten(truth.id(missing)) });
        }
        Ok(Matched { truth, predictions, partners: Some(partners) })
    }

    /// Rows of the truth, hence pairs.
    pub(crate) fn len(&self) -> u32 {
        self.truth.len() as u32
    }

    /// The prediction row matched to a truth row.
    pub(crate) fn partner(&self, truth_row: u32) -> u32 {
        match &self.partners {
            None => truth_row,
            Some(partners) => partners[truth_row as usize],
        }
    }

    /// The truth's value and the prediction's value of a truth row.
    pub(crate) fn values(&self, truth_row: u32) -> (&'a str, &'a str) {
        (self.truth.value(truth_row), self.predictions.value(self.partner(truth_row)))
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
