//! Rules: how a test or the lab makes the host misbehave on purpose. Data, not code: a list
//! evaluated in order, the first matching rule wins, no match means normal processing.
//!
//! A rule matches on any of card prefix, MTI (prefix of the four digits), processing code (prefix
//! of field 3's six digits) and amount range (field 4, inclusive); a criterion left out matches
//! everything. A rule without `mti` matches only the requests (0100, 0200): advices and
//! reversals are matched only by a rule that names them (`mti = "04"`), so a "decline big
//! amounts" rule never declines the reversal of a big amount.
//!
//! ```toml
//! [[rules]]
//! card_prefix = "541333"
//! amount_min = 50001
//! action = { decline = "61" }    # exceeds withdrawal limit
//!
//! [[rules]]
//! processing_code = "01"
//! action = "drop_answer"          # applied, answer lost
//!
//! [[rules]]
//! mti = "0420"
//! action = "no_apply_no_answer"   # reversals swallowed: the switch keeps repeating
//!
//! [[rules]]
//! card_prefix = "4"
//! action = { latency_ms = 3000 }
//! ```

use serde::{Deserialize, Serialize};

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Process normally (card, PIN and funds are still checked): exempts what a later rule would
    /// catch.
    Approve,
    /// Answer with this response code (2 alphanumeric characters), apply nothing.
    Decline(String),
    /// Apply the transaction but never answer: the host applied it and the answer was lost.
    DropAnswer,
    /// Swallow: apply nothing, answer nothing.
    NoApplyNoAnswer,
    /// Process normally, answering this many milliseconds later.
    LatencyMs(u64),
}

/// One rule: criteria and an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name for logs and the exchange record.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub card_prefix: Option<String>,
    /// Prefix of the request MTI (`"01"`, `"0200"`, `"042"`); when absent only 0100 and 0200 match.
    #[serde(default)]
    pub mti: Option<String>,
    /// Prefix of field 3 (`"01"` withdrawals, `"31"` balance inquiries, `"21"` deposits).
    #[serde(default)]
    pub processing_code: Option<String>,
    /// Inclusive bounds on field 4, in minor units.
    #[serde(default)]
    pub amount_min: Option<u64>,
    #[serde(default)]
    pub amount_max: Option<u64>,
    pub action: RuleAction,
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub mti: &'a str,
    /// The clear PAN, if the message names a card.
    pub pan: Option<&'a str>,
    pub processing_code: Option<&'a str>,
    pub amount: Option<u64>,
}

impl Rule {
    /// A rule matching everything the default MTI filter lets through.
    pub fn new(action: RuleAction) -> Rule {
        Rule {
            name: None,
            card_prefix: None,
            mti: None,
            processing_code: None,
            amount_min: None,
            amount_max: None,
            action,
        }
    }
    pub fn named(mut self, name: impl Into<String>) -> Rule {
        self.name = Some(name.into());
        self
    }
    pub fn card_prefix(mut self, prefix: impl Into<String>) -> Rule {
        self.card_prefix = Some(prefix.into());
        self
    }
    pub fn mti(mut self, mti: impl Into<String>) -> Rule {
        self.mti = Some(mti.into());
        self
    }
    pub fn processing_code(mut self, code: impl Into<String>) -> Rule {
        self.processing_code = Some(code.into());
        self
    }
    pub fn amount_range(mut self, min: Option<u64>, max: Option<u64>) -> Rule {
        self.amount_min = min;
        self.amount_max = max;
        self
    }

    /// Whether the rule is usable; the reason in words when not.
    pub fn check(&self) -> Result<(), String> {
        let digits = |s: &Option<String>, max: usize, what: &str| match s {
            Some(p) if p.is_empty() || p.len() > max || !p.bytes().all(|b| b.is_ascii_digit()) => {
                Err(format!("{what} must be 1 to {max} digits"))
            }
            _ => Ok(()),
        };
        digits(&self.card_prefix, 19, "card_prefix")?;
        digits(&self.mti, 4, "mti")?;
        digits(&self.processing_code, 6, "processing_code")?;
        if let (Some(min), Some(max)) = (self.amount_min, self.amount_max) {
            if min > max {
                return Err(format!("amount_min {min} is above amount_max {max}"));
            }
        }
        if let RuleAction::Decline(code) = &self.action {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "decline code {code:?} must be 2 alphanumeric characters"
                ));
            }
        }
        Ok(())
    }

    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let prefix_of = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(p) => have.is_some_and(|h| h.starts_with(p.as_str())),
        };
        let mti_ok = match &self.mti {
            None => matches!(s.mti, "0100" | "0200"),
            Some(p) => s.mti.starts_with(p.as_str()),
        };
        let amount_ok = match (self.amount_min, self.amount_max, s.amount) {
            (None, None, _) => true,
            (_, _, None) => false,
            (min, max, Some(a)) => min.is_none_or(|m| a >= m) && max.is_none_or(|m| a <= m),
        };
        mti_ok
            && amount_ok
            && prefix_of(&self.card_prefix, s.pan)
            && prefix_of(&self.processing_code, s.processing_code)
    }
}

/// The first rule of `rules` matching `subject`.
pub fn first_match<'r>(rules: &'r [Rule], subject: &Subject<'_>) -> Option<&'r Rule> {
    rules.iter().find(|r| r.matches(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn withdrawal(amount: u64) -> Subject<'static> {
        Subject {
            mti: "0100",
            pan: Some("5413330089020011"),
            processing_code: Some("011000"),
            amount: Some(amount),
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = vec![
            Rule::new(RuleAction::Approve).card_prefix("5413330089020011"),
            Rule::new(RuleAction::Decline("61".into())).amount_range(Some(50_001), None),
        ];
        assert_eq!(
            first_match(&rules, &withdrawal(60_000)).map(|r| &r.action),
            Some(&RuleAction::Approve)
        );
        let other = Subject {
            pan: Some("4761739001010010"),
            ..withdrawal(60_000)
        };
        assert_eq!(
            first_match(&rules, &other).map(|r| &r.action),
            Some(&RuleAction::Decline("61".into()))
        );
        assert!(first_match(
            &rules,
            &Subject {
                pan: Some("4761739001010010"),
                ..withdrawal(50_000)
            }
        )
        .is_none());
    }

    #[test]
    fn reversals_match_only_rules_that_name_them() {
        let reversal = Subject {
            mti: "0420",
            ..withdrawal(60_000)
        };
        assert!(!Rule::new(RuleAction::DropAnswer).matches(&reversal));
        assert!(Rule::new(RuleAction::DropAnswer)
            .mti("04")
            .matches(&reversal));
        assert!(!Rule::new(RuleAction::DropAnswer)
            .mti("0421")
            .matches(&reversal));
    }

    #[test]
    fn criteria_need_the_field() {
        let inquiry = Subject {
            amount: None,
            processing_code: Some("310000"),
            ..withdrawal(0)
        };
        assert!(!Rule::new(RuleAction::DropAnswer)
            .amount_range(Some(1), None)
            .matches(&inquiry));
        assert!(Rule::new(RuleAction::DropAnswer)
            .processing_code("31")
            .matches(&inquiry));
        assert!(!Rule::new(RuleAction::DropAnswer)
            .processing_code("01")
            .matches(&inquiry));
    }

    #[test]
    fn bad_rules_are_refused_in_words() {
        assert!(Rule::new(RuleAction::Decline("5".into())).check().is_err());
        assert!(Rule::new(RuleAction::Approve).mti("01x").check().is_err());
        assert!(Rule::new(RuleAction::Approve)
            .amount_range(Some(5), Some(1))
            .check()
            .unwrap_err()
            .contains("amount_min"));
        assert!(Rule::new(RuleAction::LatencyMs(5)).check().is_ok());
    }

    #[test]
    fn actions_read_from_toml() {
        #[derive(Deserialize)]
        struct R {
            rules: Vec<Rule>,
        }
        let r: R = toml::from_str(
            r#"
            [[rules]]
            action = "drop_answer"
            [[rules]]
            action = { decline = "05" }
            [[rules]]
            action = { latency_ms = 300 }
            [[rules]]
            action = "no_apply_no_answer"
            "#,
        )
        .unwrap();
        assert_eq!(
            r.rules.iter().map(|r| r.action.clone()).collect::<Vec<_>>(),
            vec![
                RuleAction::DropAnswer,
                RuleAction::Decline("05".into()),
                RuleAction::LatencyMs(300),
                RuleAction::NoApplyNoAnswer
            ]
        );
    }
}
