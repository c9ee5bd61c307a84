//! The cash dispenser: cassettes, their notes and what a dispense takes out of them.
//!
//! No I/O. Notes are counted per NDC cassette type (index 0 = type 1), over the dialect's number
//! of types; a type the profile has no cassette for holds nothing. The supplies and severity
//! strings of the cash handler `E` status are built here, so the `22 … 8 FS E…` and
//! `12 … E…` messages describe the same cassettes.

use firmware_profiles::Profile;
use serde::Serialize;

/// Notes per profile cassette when the options do not say.
pub const DEFAULT_NOTES_PER_CASSETTE: u32 = 1000;

/// How full a cassette is, as the `E` status supplies digit says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplyLevel {
    /// No cassette of this type (`0`).
    NotPresent,
    /// `1`
    Good,
    /// `2`: below the profile's low threshold.
    Low,
    /// `3`: empty.
    Out,
}

impl SupplyLevel {
    pub fn digit(self) -> char {
        match self {
            Self::NotPresent => '0',
            Self::Good => '1',
            Self::Low => '2',
            Self::Out => '3',
        }
    }
    /// Severity digit for the same cassette: none, routine (low), warning (out).
    fn severity(self) -> char {
        match self {
            Self::NotPresent | Self::Good => '0',
            Self::Low => '1',
            Self::Out => '2',
        }
    }
}

/// Why a transaction reply's notes cannot be dispensed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MixError {
    /// The notes field is empty or all zero.
    NothingToDispense,
    /// Notes asked from a cassette type the terminal does not have (1-based type).
    NoSuchCassette(usize),
    /// Not one count per cassette type.
    WrongLength { expected: usize, got: usize },
}

#[derive(Debug, Clone)]
struct Cassette {
    denomination_minor: Option<u64>,
    low_threshold: u32,
    loaded: u32,
    left: u32,
    /// Notes that reached customers.
    dispensed: u32,
    /// Notes that left the cassette but went to the reject bin (purged or retracted).
    rejected: u32,
}

/// The terminal's cassettes.
#[derive(Debug, Clone)]
pub struct Cassettes {
    slots: Vec<Cassette>,
}

impl Cassettes {
    /// Cassettes of `profile`, loaded with `initial` notes per type (index 0 = type 1) or
    /// [`DEFAULT_NOTES_PER_CASSETTE`] in each cassette the profile has.
    pub fn load(profile: &Profile, initial: Option<&[u32]>) -> Result<Self, String> {
        let types = profile.dialect.cassette_types;
        if let Some(v) = initial {
            if v.len() > types {
                return Err(format!(
                    "initial notes: {} counts for a dialect with {types} cassette types",
                    v.len()
                ));
            }
        }
        let slots = (1..=types)
            .map(|t| {
                let def = profile
                    .cassettes
                    .iter()
                    .find(|c| usize::from(c.cassette_type) == t);
                let notes = match (def, initial) {
                    (None, _) => 0,
                    (Some(_), Some(v)) => v.get(t - 1).copied().unwrap_or(0),
                    (Some(_), None) => DEFAULT_NOTES_PER_CASSETTE,
                };
                Cassette {
                    denomination_minor: def.map(|c| c.denomination_minor),
                    low_threshold: def.map_or(0, |c| c.low_threshold),
                    loaded: notes,
                    left: notes,
                    dispensed: 0,
                    rejected: 0,
                }
            })
            .collect();
        Ok(Self { slots })
    }

    pub fn types(&self) -> usize {
        self.slots.len()
    }

    /// Checks a reply's notes-to-dispense before anything moves.
    pub fn check_mix(&self, notes: &[u32]) -> Result<(), MixError> {
        if notes.len() != self.slots.len() {
            return Err(MixError::WrongLength {
                expected: self.slots.len(),
                got: notes.len(),
            });
        }
        if notes.iter().all(|&n| n == 0) {
            return Err(MixError::NothingToDispense);
        }
        match notes
            .iter()
            .zip(&self.slots)
            .position(|(&n, s)| n > 0 && s.denomination_minor.is_none())
        {
            Some(i) => Err(MixError::NoSuchCassette(i + 1)),
            None => Ok(()),
        }
    }

    /// The value of `notes` (one count per type) in minor units.
    pub fn value_minor(&self, notes: &[u32]) -> u64 {
        notes
            .iter()
            .zip(&self.slots)
            .map(|(&n, s)| u64::from(n) * s.denomination_minor.unwrap_or(0))
            .sum()
    }

    /// Notes that can physically leave for `wanted`: each count capped by what the cassette holds.
    pub fn available(&self, wanted: &[u32]) -> Vec<u32> {
        wanted
            .iter()
            .zip(&self.slots)
            .map(|(&n, s)| n.min(s.left))
            .collect()
    }

    /// Takes `notes` out (each capped by what is left) and returns what actually left.
    pub fn take(&mut self, notes: &[u32]) -> Vec<u32> {
        let taken = self.available(notes);
        for (s, &n) in self.slots.iter_mut().zip(&taken) {
            s.left -= n;
            s.dispensed += n;
        }
        taken
    }

    /// Notes already taken (and counted dispensed) that did not reach the customer: purged or
    /// retracted into the reject bin. Each count is capped by what was counted dispensed; returns
    /// what was moved.
    pub fn divert(&mut self, notes: &[u32]) -> Vec<u32> {
        let moved: Vec<u32> = notes
            .iter()
            .zip(&self.slots)
            .map(|(&n, s)| n.min(s.dispensed))
            .collect();
        for (s, &n) in self.slots.iter_mut().zip(&moved) {
            s.dispensed -= n;
            s.rejected += n;
        }
        moved
    }

    pub fn level(&self, i: usize) -> SupplyLevel {
        match self.slots.get(i) {
            None => SupplyLevel::NotPresent,
            Some(s) if s.denomination_minor.is_none() => SupplyLevel::NotPresent,
            Some(s) if s.left == 0 => SupplyLevel::Out,
            Some(s) if s.left < s.low_threshold => SupplyLevel::Low,
            Some(_) => SupplyLevel::Good,
        }
    }

    pub fn levels(&self) -> Vec<SupplyLevel> {
        (0..self.slots.len()).map(|i| self.level(i)).collect()
    }

    /// `E` status supplies field: reject bin (`1`, good) then one digit per cassette type.
    pub fn supplies_field(&self) -> String {
        std::iter::once('1')
            .chain(self.levels().into_iter().map(SupplyLevel::digit))
            .collect()
    }

    /// `E` status severity field: the device's severity digit then one per cassette type.
    pub fn severity_field(&self, device: char) -> String {
        std::iter::once(device)
            .chain(self.levels().into_iter().map(SupplyLevel::severity))
            .collect()
    }

    pub fn loaded(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.loaded).collect()
    }
    pub fn left(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.left).collect()
    }
    pub fn dispensed(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.dispensed).collect()
    }
    pub fn rejected(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.rejected).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile::builtin("ncr-selfserv-basic").expect("builtin profile")
    }

    #[test]
    fn take_caps_at_what_is_left_and_reports_levels() {
        let mut c = Cassettes::load(&profile(), Some(&[0, 101, 3, 0])).unwrap();
        assert_eq!(c.check_mix(&[0, 2, 0, 0]), Ok(()));
        assert_eq!(c.check_mix(&[0, 0, 0, 0]), Err(MixError::NothingToDispense));
        assert_eq!(c.take(&[0, 2, 5, 0]), vec![0, 2, 3, 0]);
        assert_eq!(c.left(), vec![0, 99, 0, 0]);
        assert_eq!(
            c.levels(),
            vec![
                SupplyLevel::Out,
                SupplyLevel::Low,
                SupplyLevel::Out,
                SupplyLevel::Out
            ]
        );
        assert_eq!(c.supplies_field(), "13233");
        assert_eq!(c.value_minor(&[0, 2, 3, 0]), 2 * 2000 + 3 * 5000);
    }

    #[test]
    fn diverted_notes_count_as_rejected_not_dispensed() {
        let mut c = Cassettes::load(&profile(), Some(&[10, 10, 10, 10])).unwrap();
        assert_eq!(c.take(&[0, 3, 1, 0]), vec![0, 3, 1, 0]);
        assert_eq!(c.divert(&[0, 2, 5, 0]), vec![0, 2, 1, 0]);
        assert_eq!(c.dispensed(), vec![0, 1, 0, 0]);
        assert_eq!(c.rejected(), vec![0, 2, 1, 0]);
        assert_eq!(c.left(), vec![10, 7, 9, 10]);
        for i in 0..4 {
            assert_eq!(
                c.left()[i] + c.dispensed()[i] + c.rejected()[i],
                c.loaded()[i]
            );
        }
    }
}
