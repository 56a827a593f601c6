//! "Did you mean" and bounded lists for messages that name what exists: a typo deserves the
//! closest name, and a 256-node cluster's names do not belong on one line.

/// How many names a message lists before it says how many more there are.
pub const LISTED: usize = 12;

/// The candidate closest to `word` by edit distance (a swap of two neighbours counts once), when
/// it is close enough to be a typo: at most one edit in a short word, a third of a long one.
/// Ties go to the first candidate, so the answer is deterministic.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = distance(&word.to_lowercase(), &c.to_lowercase());
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean `x`?` when a candidate is close, else nothing: appended to a message.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// The names joined with ", ", at most [`LISTED`] of them, then "… and N more".
pub fn listing<'a, I>(names: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    let all: Vec<&str> = names.into_iter().collect();
    if all.is_empty() {
        return "none".to_string();
    }
    if all.len() <= LISTED {
        return all.join(", ");
    }
    format!(
        "{}, … and {} more",
        all[..LISTED].join(", "),
        all.len() - LISTED
    )
}

/// Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
/// neighbours each cost one.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_the_name_it_missed() {
        let keys = ["name", "id", "region", "edition", "nodes"];
        assert_eq!(closest("regoin", keys), Some("region"));
        assert_eq!(closest("nodse", keys), Some("nodes"));
        assert_eq!(closest("Region", keys), Some("region"));
        assert_eq!(
            closest("replace-a11", ["replace-a1", "a1-refill"]),
            Some("replace-a1")
        );
    }

    #[test]
    fn an_unrelated_word_suggests_nothing() {
        assert_eq!(closest("backups", ["name", "region"]), None);
        assert_eq!(closest("x", ["name", "id"]), None);
        assert_eq!(did_you_mean("zzz", ["name"]), "");
    }

    #[test]
    fn ties_go_to_the_first_candidate() {
        assert_eq!(closest("n10", ["n11", "n12"]), Some("n11"));
    }

    #[test]
    fn long_lists_are_elided_with_a_count() {
        let names: Vec<String> = (1..=256).map(|i| format!("n{i}")).collect();
        let text = listing(names.iter().map(String::as_str));
        assert_eq!(
            text,
            "n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, n12, … and 244 more"
        );
        assert_eq!(listing(["a", "b"]), "a, b");
        assert_eq!(listing(std::iter::empty()), "none");
    }
}
