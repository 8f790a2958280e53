//! The routing explanation as a saga keeps it: the fixed phrases of the semantic engine's
//! explanation (`semantic::engine::explain`, `semantic::routing`) each stored as one private-use
//! character, so the text every command carries costs about half as much in the saga's state and
//! changelog. Commands get the text back exactly ([`expand`]); only the stored form is short.
//!
//! Why: the explanation is the largest field of a saga record (about 600 of 1,300 bytes), and it
//! is copied into every command, so the saga must keep it to the end (DESIGN.md: every command
//! carries its explanation). A generic compressor does little on one 600-byte string (deflate
//! keeps two thirds, and JSON would need it base64-encoded); the phrases are most of its bytes.
//!
//! Lossless for any text: a text that already holds a character of the private-use range
//! [`FIRST`]..=[`LAST`] is stored as it is after [`RAW`], and a stored text is expanded only when
//! it starts with [`MARK`]; one that starts with neither (a record written before this coding)
//! is its own text. When the engine's wording changes, this table only compresses less.

/// Starts a phrase-coded text.
const MARK: char = '\u{E000}';
/// Starts a text stored as it is, because it holds characters of the coding range.
const RAW: char = '\u{E0FF}';
/// The first and last characters a phrase may be coded as (and the range a text to code must not
/// hold).
const FIRST: char = '\u{E000}';
const LAST: char = '\u{E0FF}';

/// Phrase `i` is coded as `U+E001 + i`. Longer phrases first, so a shorter one never splits them.
const PHRASES: &[&str] = &[
    " (no rule fired: the workflow's default)",
    "; registry empty, capabilities not checked",
    " malformed diagram points dropped",
    " baseline: entropy ",
    " but diagram implies ",
    ") x amplification ",
    "; betti reported ",
    "; pattern library v",
    "; route: workflow ",
    ", significant ",
    "; coordination ",
    " within radius ",
    "; runner-up ",
    "; complexity ",
    ", persistence ",
    " (departure ",
    "unknown: nearest pattern ",
    " is outside its radius ",
    ", triage by an Analyst",
    " (confidence ",
    "; distance ",
    "; urgency ",
    " (severity ",
    ") x decay ",
    " (entropy ",
    ", entities ",
    "warming-up",
    ", diagram ",
    " at distance ",
    "pattern ",
    " = base ",
    ", score ",
    ", betti ",
    "; layer ",
    " (age ",
    ", tags ",
    ", raw ",
    " ms)",
    " vs ",
    "Operational",
    "Tactical",
    "Strategic",
    "Pipeline",
    "Consensus",
    "FanOut",
    "Hierarchical",
    "consensus: urgency >= ",
    " and confidence < ",
    "hierarchical: complexity > ",
    "fan-out: >= ",
    " reassigned ",
    " (capabilities)",
    "; step ",
    "context",
    "running",
    "CRITICAL",
    "MEDIUM",
    "HIGH",
    "LOW",
];

fn code(i: usize) -> char {
    char::from_u32(FIRST as u32 + 1 + i as u32).expect("the table fits the private-use range")
}

/// The stored form of `text`: phrase-coded, unless it holds a character of the coding range.
pub fn compact(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    if text.chars().any(|c| (FIRST..=LAST).contains(&c)) {
        return format!("{RAW}{text}");
    }
    let mut coded = text.to_string();
    for (i, phrase) in PHRASES.iter().enumerate() {
        if coded.contains(phrase) {
            coded = coded.replace(phrase, code(i).encode_utf8(&mut [0; 4]));
        }
    }
    let mut stored = String::with_capacity(coded.len() + MARK.len_utf8());
    stored.push(MARK);
    stored.push_str(&coded);
    stored
}

/// The text `stored` was made from.
pub fn expand(stored: &str) -> String {
    if let Some(raw) = stored.strip_prefix(RAW) {
        return raw.to_string();
    }
    let Some(coded) = stored.strip_prefix(MARK) else {
        return stored.to_string();
    };
    let mut text = String::with_capacity(coded.len() * 2);
    for c in coded.chars() {
        let i = (c as u32).wrapping_sub(FIRST as u32 + 1) as usize;
        match PHRASES.get(i) {
            Some(phrase) if (FIRST..=LAST).contains(&c) => text.push_str(phrase),
            _ => text.push(c),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPLANATION: &str = "pattern memory-leak (confidence 1.00, raw 0.55; distance 2.86 within radius 15.52; runner-up resource-contention 0.00); complexity 0.39 (entropy 0.77, significant 0.39, entities 0.00, tags 0.25); urgency 0.47 = base 0.47 (severity MEDIUM 0.50, score 0.41) x amplification 1.00 (departure 0.00 vs warming-up baseline: entropy 0.00, persistence 0.00, betti 0.00, diagram 0.00) x decay 1.00 (age 0 ms); betti reported [1, 1, 0] but diagram implies [1, 2, 0]; route: workflow memory-leak-remediation; coordination Pipeline (no rule fired: the workflow's default); layer Operational; registry empty, capabilities not checked; pattern library v2";

    #[test]
    fn an_explanation_comes_back_exactly_at_about_half_its_size() {
        let stored = compact(EXPLANATION);
        assert_eq!(expand(&stored), EXPLANATION);
        assert!(
            stored.len() * 2 < EXPLANATION.len() + 40,
            "{} of {} bytes",
            stored.len(),
            EXPLANATION.len()
        );
        // It stays one JSON string with no escapes: the private-use characters are plain UTF-8.
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(json.len(), stored.len() + 2);
    }

    #[test]
    fn any_other_text_round_trips_too() {
        for text in [
            "",
            "plain words",
            "holds \u{E005} already",
            "\u{E000} starts like a coded text",
            "\u{E0FF} starts like a raw one",
            "pattern pattern  (age  ms) vs vs",
            "ünïcödé; layer Strategic",
        ] {
            assert_eq!(expand(&compact(text)), text, "{text:?}");
        }
    }
}
