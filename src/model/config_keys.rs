//! Keys of a config that look misspelled. Official configs carry many keys the engine does not
//! read (`_class_name`, `sample_size`, …), so unknown keys are fine; but one that is a letter
//! or two from a key the engine reads is most likely a typo of an optional key, which would
//! otherwise silently take its default.

use serde::Serialize;

/// Warnings for the keys of `text`'s top-level object that are not keys of `example` (nor in
/// `also`) but within two edits of one: "`shift_windw` is not read; did you mean
/// `shift_window`?".
pub fn misspelled(text: &str, example: &impl Serialize, also: &[&str]) -> Vec<String> {
    let known: Vec<String> = match serde_json::to_value(example) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let Ok(serde_json::Value::Object(given)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    let is_known = |k: &str| known.iter().any(|n| n == k) || also.contains(&k);
    given
        .keys()
        .filter(|k| !is_known(k))
        .filter_map(|k| {
            let near = known
                .iter()
                .map(|n| (strsim::damerau_levenshtein(k, n), n))
                .filter(|(d, _)| *d <= 2)
                .min()?;
            Some(format!("`{k}` is not read; did you mean `{}`?", near.1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn near_misses_are_named_and_other_keys_left_alone() {
        let cfg = crate::model::PtditConfig::released_xl();
        let text =
            r#"{"shift_windw": true, "_class_name": "PTDiT", "sample_size": 32, "num_layers": 2}"#;
        let w = super::misspelled(text, &cfg, &[]);
        assert_eq!(
            w,
            ["`shift_windw` is not read; did you mean `shift_window`?"]
        );
    }
}
