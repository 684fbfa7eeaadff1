//! Passphrase strength, with zxcvbn (Dropbox's estimator: dictionaries,
//! keyboard patterns, dates, repeats — not character-class rules).

/// A passphrase's strength: a score from 0 (guessed in seconds) to 4, and
/// a hint to show under the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strength {
    /// 0 to 4.
    pub score: u8,
    /// What to show the user.
    pub hint: String,
}

impl Strength {
    /// Whether a new profile or a new passphrase may have it (a score of
    /// at least [`MIN_SCORE`]): the one rule the app, the CLI and the node
    /// apply.
    pub fn is_enough(&self) -> bool {
        self.score >= MIN_SCORE
    }
}

/// The lowest score a new profile accepts: 2 means zxcvbn estimates
/// around 10⁸ guesses, out of reach of an online guesser though not of an
/// offline one with the file — the passphrase guards a file the user
/// holds, and Argon2id slows each guess.
pub const MIN_SCORE: u8 = 2;

/// Estimates `passphrase`, taking the user's `name` as a known word.
pub fn estimate(passphrase: &str, name: &str) -> Strength {
    if passphrase.is_empty() {
        return Strength {
            score: 0,
            hint: String::new(),
        };
    }
    // zxcvbn's cost grows with length; it only looks at the first 100
    // characters anyway.
    let head: String = passphrase.chars().take(100).collect();
    let inputs: Vec<&str> = name.split_whitespace().collect();
    let entropy = zxcvbn::zxcvbn(&head, &inputs);
    let score = u8::from(entropy.score());
    let feedback = entropy.feedback();
    let warning = feedback
        .and_then(|f| f.warning())
        .map(|w| w.to_string())
        .unwrap_or_default();
    let suggestion = feedback
        .and_then(|f| f.suggestions().first())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let verdict = match score {
        0 => "Very weak",
        1 => "Weak",
        2 => "Fair",
        3 => "Good",
        _ => "Strong",
    };
    let mut hint = verdict.to_owned();
    for part in [warning, suggestion] {
        if !part.is_empty() {
            hint.push_str(". ");
            hint.push_str(part.trim_end_matches('.'));
        }
    }
    if score < MIN_SCORE {
        hint.push_str(". Add more words to continue");
    }
    hint.push('.');
    Strength { score, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_weak_and_long_phrases_strong() {
        assert!(estimate("password", "Alice").score < MIN_SCORE);
        assert!(estimate("alice2024", "Alice").score < MIN_SCORE);
        let good = estimate("copper kettle under the violet moon", "Alice");
        assert!(good.score >= 3, "{good:?}");
        assert!(good.hint.starts_with("Good") || good.hint.starts_with("Strong"));
        assert_eq!(estimate("", "Alice").score, 0);
    }
}
