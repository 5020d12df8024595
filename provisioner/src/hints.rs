//! "did you mean HUX0010?": the nearest known name to a mistyped one (node keys in the CLI,
//! CSV headers in registration imports, saved contexts).

/// How far (in edits) a known name may be from the one given to be suggested: a typo or
/// two, not a different name.
const MAX_EDITS: usize = 2;

/// `; did you mean X?` for the known name nearest to `given` (case-insensitive
/// Damerau-Levenshtein, so a swapped pair counts as one edit), or "" when none is close.
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    nearest(given, known).map_or_else(String::new, |name| format!("; did you mean {name}?"))
}

/// The known name nearest to `given`, if one is within a typo or two.
pub fn nearest<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given_lower = given.to_lowercase();
    known
        .into_iter()
        .filter(|name| !name.is_empty() && *name != given)
        .map(|name| {
            (
                strsim::damerau_levenshtein(&given_lower, &name.to_lowercase()),
                name,
            )
        })
        .filter(|(distance, _)| *distance <= MAX_EDITS)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_the_nearest_close_name_only() {
        let known = ["HUX0010", "HUX0020", "ABC"];
        assert_eq!(did_you_mean("HUX001O", known), "; did you mean HUX0010?");
        assert_eq!(did_you_mean("ZZZZZZZZ", known), "");
    }
}
