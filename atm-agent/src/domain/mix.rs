//! The note mix: which notes, from which cassettes, make up a withdrawal amount.
//!
//! A greedy "largest note first" fails on amounts like 60 with 20s and 50s loaded; this search
//! is exact. It minimises the number of notes (faster dispense, fewer jams), and among mixes with
//! as many notes prefers the one that leaves the fullest cassettes fullest, so cassettes drain
//! evenly. Bounded: at most `max_notes` notes per dispense (the dispenser's limit) and at most
//! the notes each cassette holds. Pure and deterministic.

/// One cassette as the mix sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CassetteStock {
    /// 1-based NDC cassette type: its position in the reply's notes field.
    pub cassette_type: u8,
    pub denomination_minor: u64,
    pub notes: u32,
}

/// Notes per cassette type, indexed by `cassette_type - 1`, `cassette_types` long.
pub type Mix = Vec<u32>;

/// Why an amount cannot be dispensed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("amount must be positive")]
    Zero,
    #[error("{amount_minor} cannot be made from the notes loaded (within {max_notes} notes)")]
    CannotMake { amount_minor: u64, max_notes: u32 },
}

/// Finds the mix for `amount_minor`, or says why there is none.
pub fn mix(
    amount_minor: u64,
    stock: &[CassetteStock],
    cassette_types: usize,
    max_notes: u32,
) -> Result<Mix, MixError> {
    if amount_minor == 0 {
        return Err(MixError::Zero);
    }
    let mut order: Vec<CassetteStock> = stock
        .iter()
        .copied()
        .filter(|c| c.notes > 0 && c.denomination_minor > 0)
        .collect();
    order.sort_by(|a, b| {
        b.denomination_minor
            .cmp(&a.denomination_minor)
            .then(b.notes.cmp(&a.notes))
    });
    let mut search = Search {
        order: &order,
        best: None,
        current: vec![0; order.len()],
        max_notes,
    };
    search.run(0, amount_minor, 0);
    let (_, counts) = search.best.ok_or(MixError::CannotMake {
        amount_minor,
        max_notes,
    })?;
    let mut out = vec![0u32; cassette_types];
    for (c, n) in order.iter().zip(counts) {
        if let Some(slot) = out.get_mut(usize::from(c.cassette_type).saturating_sub(1)) {
            *slot += n;
        }
    }
    Ok(out)
}

/// How good a mix is, smaller is better: notes used, then (reversed) the notes left in the
/// emptiest cassette it takes from.
type Score = (u32, std::cmp::Reverse<u32>);

struct Search<'a> {
    order: &'a [CassetteStock],
    /// The best mix so far: its score and notes per cassette (in `order`).
    best: Option<(Score, Vec<u32>)>,
    current: Vec<u32>,
    max_notes: u32,
}

impl Search<'_> {
    fn run(&mut self, i: usize, remaining: u64, used: u32) {
        if remaining == 0 {
            let left_min = self
                .order
                .iter()
                .zip(&self.current)
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| c.notes - n)
                .min()
                .unwrap_or(0);
            let score = (used, std::cmp::Reverse(left_min));
            if self.best.as_ref().is_none_or(|(b, _)| score < *b) {
                self.best = Some((score, self.current.clone()));
            }
            return;
        }
        let Some(c) = self.order.get(i) else { return };
        if let Some(((best_used, _), _)) = &self.best {
            if used > *best_used {
                return;
            }
        }
        let budget = self.max_notes.saturating_sub(used);
        // Cassettes are sorted by denomination, largest first: if even all remaining notes at this
        // denomination cannot reach the amount, nothing after it can either.
        if remaining > u64::from(budget) * c.denomination_minor {
            return;
        }
        let most = (remaining / c.denomination_minor)
            .min(u64::from(c.notes))
            .min(u64::from(budget)) as u32;
        for n in (0..=most).rev() {
            self.current[i] = n;
            self.run(
                i + 1,
                remaining - u64::from(n) * c.denomination_minor,
                used + n,
            );
        }
        self.current[i] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(list: &[(u8, u64, u32)]) -> Vec<CassetteStock> {
        list.iter()
            .map(|&(t, d, n)| CassetteStock {
                cassette_type: t,
                denomination_minor: d,
                notes: n,
            })
            .collect()
    }

    #[test]
    fn fewest_notes_from_the_largest_denominations() {
        let s = stock(&[
            (1, 1000, 100),
            (2, 2000, 100),
            (3, 5000, 100),
            (4, 10000, 100),
        ]);
        assert_eq!(mix(18000, &s, 4, 40).unwrap(), vec![1, 1, 1, 1]);
        assert_eq!(mix(20000, &s, 4, 40).unwrap(), vec![0, 0, 0, 2]);
    }

    #[test]
    fn amounts_greedy_cannot_make_are_made() {
        let s = stock(&[(1, 2000, 10), (2, 5000, 10)]);
        assert_eq!(mix(6000, &s, 4, 40).unwrap(), vec![3, 0, 0, 0]);
        assert_eq!(mix(11000, &s, 4, 40).unwrap(), vec![3, 1, 0, 0]);
    }

    #[test]
    fn empty_cassettes_and_limits_are_respected() {
        let s = stock(&[(1, 1000, 100), (2, 5000, 0)]);
        assert_eq!(mix(5000, &s, 4, 40).unwrap(), vec![5, 0, 0, 0]);
        assert_eq!(
            mix(50000, &s, 4, 40),
            Err(MixError::CannotMake {
                amount_minor: 50000,
                max_notes: 40
            })
        );
        assert_eq!(
            mix(1500, &s, 4, 40),
            Err(MixError::CannotMake {
                amount_minor: 1500,
                max_notes: 40
            })
        );
        assert_eq!(mix(0, &s, 4, 40), Err(MixError::Zero));
    }

    #[test]
    fn equal_denominations_drain_evenly() {
        let s = stock(&[(1, 2000, 10), (2, 2000, 50)]);
        assert_eq!(mix(2000, &s, 4, 40).unwrap(), vec![0, 1, 0, 0]);
    }

    #[test]
    fn every_mix_adds_up_and_stays_within_stock() {
        let s = stock(&[(1, 1000, 7), (2, 2000, 3), (3, 5000, 2), (4, 10000, 1)]);
        for amount in (1000..=40000).step_by(1000) {
            if let Ok(m) = mix(amount, &s, 4, 40) {
                let total: u64 = m
                    .iter()
                    .zip(&s)
                    .map(|(n, c)| u64::from(*n) * c.denomination_minor)
                    .sum();
                assert_eq!(total, amount);
                assert!(m.iter().zip(&s).all(|(n, c)| *n <= c.notes));
            }
        }
    }
}
