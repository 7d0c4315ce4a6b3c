//! Failure reasons grouped by a normalised template and a stable fingerprint.
//!
//! "timeout after 30012 ms" and "timeout after 29877 ms" are the same problem; counting them
//! apart makes "common failure reasons" useless. Like Sentry's message parameterisation,
//! [`normalize`] masks the parts of a message that vary from one occurrence to the next, in this
//! order:
//!
//! | what | placeholder | example |
//! |---|---|---|
//! | quoted strings (`"…"`, `` `…` ``, `'…'` at a word boundary) | `<str>` | `no such key 'a1'` → `no such key <str>` |
//! | UUIDs | `<uuid>` | `550e8400-e29b-41d4-a716-446655440000` |
//! | URLs (`scheme://…`) | `<url>` | `http://10.0.0.7:8080/render` |
//! | e-mail addresses | `<email>` | `ops@example.com` |
//! | IPv6 and IPv4 addresses (a port after `:` is a number) | `<ip>` | `10.0.0.7:8080` → `<ip>:<num>` |
//! | paths (`/…`, `~/…`, `./…`, `C:\…`, or two or more `/`) | `<path>` | `/var/lib/jarvis/x.wav` |
//! | host names ending in a common top-level or cluster domain, and `localhost` | `<host>` | `db.internal` |
//! | hex ids (`0x…`, or 8+ hex digits with a digit) | `<hex>` | `0x7f3a`, `deadbeef42` |
//! | long mixed ids (16+ letters and digits), id suffixes after `-`/`_` | `<id>` | `req-abc123xyz` → `req-<id>` |
//! | numbers not glued to a preceding letter (so `v2`, `sha256` stay) | `<num>` | `30012ms` → `<num>ms` |
//!
//! Whitespace is collapsed, the result is cut to [`MAX_TEMPLATE_CHARS`], and the fingerprint is
//! the 64-bit FNV-1a hash of the template in hex: simple, fast, dependency-free and identical on
//! every platform and version, which matters because fingerprints are stored and compared across
//! instances. (It is not a cryptographic hash; collisions only merge two groups' counts.)
//!
//! [`FailureGroups`] counts messages per fingerprint and merges like every other aggregate. For
//! templates that still differ in a word or two (an agent that names the genre in its error),
//! [`cluster_templates`] applies Drain's idea at query time: templates with the same number of
//! tokens and the same first token whose tokens agree in at least a given share of positions are
//! merged, with the differing positions shown as `<*>`. Doing it at query time keeps the stored
//! aggregates exactly mergeable.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Templates are cut to this many characters.
pub const MAX_TEMPLATE_CHARS: usize = 200;

/// Example messages kept with a group are cut to this many characters.
pub const MAX_EXAMPLE_CHARS: usize = 500;

/// Only this many leading characters of a message are normalised (the rest cannot reach the
/// template anyway; this bounds the work on a huge message).
const MAX_INPUT_CHARS: usize = 2_000;

/// Normalises a failure message into its template (see the [module docs](self)).
///
/// A template normalises to itself. One pass does not always get there: masking a word can
/// reveal a quoted string the pass did not see (in `'\A\'` the closing quote is escaped, so the
/// quote stays open, until the word becomes `'<path>'`). A template that still holds a quote
/// is therefore normalised again until it no longer changes (in practice once or twice).
pub fn normalize(message: &str) -> String {
    let mut template = normalize_once(message);
    for _ in 0..8 {
        if !template.contains(['\'', '"', '`']) {
            break;
        }
        let again = normalize_once(&template);
        if again == template {
            break;
        }
        template = again;
    }
    template
}

fn normalize_once(message: &str) -> String {
    let input: Vec<char> = message.chars().take(MAX_INPUT_CHARS).collect();
    let unquoted = mask_quoted(&input);
    let without_uuids = mask_uuids(&unquoted);
    let mut template = String::new();
    let mut length = 0;
    for word in without_uuids.split_whitespace() {
        if length >= MAX_TEMPLATE_CHARS {
            break;
        }
        if !template.is_empty() {
            template.push(' ');
        }
        let masked = mask_word(word);
        length += masked.chars().count() + 1;
        template.push_str(&masked);
    }
    truncate_chars(&template, MAX_TEMPLATE_CHARS)
}

/// The fingerprint of a failure message: the fingerprint of its [`normalize`]d template.
pub fn fingerprint(message: &str) -> Fingerprint {
    Fingerprint::of_template(&normalize(message))
}

/// A stable 16-hex-digit identifier of a failure template (64-bit FNV-1a).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of an already normalised template.
    pub fn of_template(template: &str) -> Self {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = template.bytes().fold(OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        });
        Fingerprint(format!("{hash:016x}"))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One group of failures: its template, how often it happened and one example message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// The normalised template shared by the group's messages.
    pub template: String,
    /// The number of failures in the group.
    pub count: u64,
    /// One real message of the group: the shortest seen (ties: the alphabetically first), so
    /// that merging in any order picks the same one.
    pub example: String,
}

/// Failure counts per fingerprint; mergeable (counts add, templates and examples are chosen by
/// a fixed order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FailureGroups {
    groups: BTreeMap<Fingerprint, FailureGroup>,
}

impl FailureGroups {
    /// No failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one failure message and returns its fingerprint.
    pub fn observe(&mut self, message: &str) -> Fingerprint {
        let template = normalize(message);
        let fingerprint = Fingerprint::of_template(&template);
        let group = FailureGroup {
            template,
            count: 1,
            example: truncate_chars(message, MAX_EXAMPLE_CHARS),
        };
        self.add(fingerprint.clone(), &group);
        fingerprint
    }

    /// Adds every group of `other` (exact, associative and commutative).
    pub fn merge(&mut self, other: &FailureGroups) {
        for (fingerprint, group) in &other.groups {
            self.add(fingerprint.clone(), group);
        }
    }

    fn add(&mut self, fingerprint: Fingerprint, group: &FailureGroup) {
        match self.groups.get_mut(&fingerprint) {
            None => {
                self.groups.insert(fingerprint, group.clone());
            }
            Some(existing) => {
                existing.count += group.count;
                // Two templates with one fingerprint would be a hash collision; keep a
                // deterministic one.
                if group.template < existing.template {
                    existing.template.clone_from(&group.template);
                }
                if better_example(&group.example, &existing.example) {
                    existing.example.clone_from(&group.example);
                }
            }
        }
    }

    /// The `n` largest groups, by count (ties: by template).
    pub fn top(&self, n: usize) -> Vec<(Fingerprint, FailureGroup)> {
        let mut all: Vec<(Fingerprint, FailureGroup)> = self
            .groups
            .iter()
            .map(|(f, g)| (f.clone(), g.clone()))
            .collect();
        all.sort_by(|a, b| {
            b.1.count
                .cmp(&a.1.count)
                .then_with(|| a.1.template.cmp(&b.1.template))
        });
        all.truncate(n);
        all
    }

    /// The group of a fingerprint.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&FailureGroup> {
        self.groups.get(fingerprint)
    }

    /// All groups by fingerprint.
    pub fn iter(&self) -> impl Iterator<Item = (&Fingerprint, &FailureGroup)> {
        self.groups.iter()
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no failure was counted.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The total number of failures counted.
    pub fn total(&self) -> u64 {
        self.groups.values().map(|g| g.count).sum()
    }
}

/// Groups whose templates were merged by [`cluster_templates`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCluster {
    /// The merged template; positions where members differ read `<*>`.
    pub template: String,
    /// The total count of the members.
    pub count: u64,
    /// The example of the members chosen like [`FailureGroup::example`].
    pub example: String,
    /// The member fingerprints, sorted.
    pub fingerprints: Vec<Fingerprint>,
}

/// The wildcard Drain puts where templates of one cluster differ.
pub const WILDCARD: &str = "<*>";

/// Merges similar templates, Drain-style (see the [module docs](self)).
///
/// Groups are visited from the largest; each joins the first cluster with the same token count
/// and first token whose tokens agree (or are `<*>`) in at least `similarity` of the positions,
/// else starts a new cluster. `similarity` is clamped to `[0, 1]`; NaN means 1 (identical
/// templates only). The result is sorted by count, largest first (ties: by template).
pub fn cluster_templates(groups: &FailureGroups, similarity: f64) -> Vec<FailureCluster> {
    let threshold = if similarity.is_nan() {
        1.0
    } else {
        similarity.clamp(0.0, 1.0)
    };
    let mut clusters: Vec<(Vec<String>, FailureCluster)> = Vec::new();
    for (fingerprint, group) in groups.top(usize::MAX) {
        let tokens: Vec<String> = group.template.split(' ').map(str::to_owned).collect();
        let found = clusters.iter_mut().find(|(cluster_tokens, _)| {
            cluster_tokens.len() == tokens.len()
                && cluster_tokens.first() == tokens.first()
                && token_similarity(cluster_tokens, &tokens) >= threshold
        });
        match found {
            Some((cluster_tokens, cluster)) => {
                for (mine, theirs) in cluster_tokens.iter_mut().zip(&tokens) {
                    if mine != theirs {
                        *mine = WILDCARD.to_owned();
                    }
                }
                cluster.template = cluster_tokens.join(" ");
                cluster.count += group.count;
                if better_example(&group.example, &cluster.example) {
                    cluster.example = group.example;
                }
                cluster.fingerprints.push(fingerprint);
            }
            None => clusters.push((
                tokens,
                FailureCluster {
                    template: group.template,
                    count: group.count,
                    example: group.example,
                    fingerprints: vec![fingerprint],
                },
            )),
        }
    }
    let mut result: Vec<FailureCluster> = clusters
        .into_iter()
        .map(|(_, mut cluster)| {
            cluster.fingerprints.sort();
            cluster
        })
        .collect();
    result.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.template.cmp(&b.template))
    });
    result
}

fn token_similarity(cluster: &[String], tokens: &[String]) -> f64 {
    if tokens.is_empty() {
        return 1.0;
    }
    let matching = cluster
        .iter()
        .zip(tokens)
        .filter(|(a, b)| a == b || a.as_str() == WILDCARD)
        .count();
    matching as f64 / tokens.len() as f64
}

/// Whether `candidate` is a better example than `current`: shorter, then alphabetically first.
fn better_example(candidate: &str, current: &str) -> bool {
    (candidate.chars().count(), candidate) < (current.chars().count(), current)
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Replaces quoted strings by `<str>`.
fn mask_quoted(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let closing = match c {
            '"' | '`' => find_closing(chars, i, c, |_| true),
            '\'' if i == 0 || is_quote_opener_context(chars[i - 1]) => {
                find_closing(chars, i, c, |next| next.is_none_or(is_quote_closer_context))
            }
            _ => None,
        };
        match closing {
            Some(end) => {
                out.push_str("<str>");
                i = end + 1;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn find_closing(
    chars: &[char],
    open: usize,
    quote: char,
    accept_after: impl Fn(Option<char>) -> bool,
) -> Option<usize> {
    let mut j = open + 1;
    while j < chars.len() {
        if chars[j] == '\\' {
            j += 2;
            continue;
        }
        if chars[j] == quote && accept_after(chars.get(j + 1).copied()) {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn is_quote_opener_context(previous: char) -> bool {
    previous.is_whitespace() || "([{=:,".contains(previous)
}

fn is_quote_closer_context(next: char) -> bool {
    next.is_whitespace() || ")]},.;:!?".contains(next)
}

/// Replaces UUIDs (8-4-4-4-12 hex digits) anywhere in the text by `<uuid>`.
fn mask_uuids(text: &str) -> String {
    const SHAPE: &[u8] = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let fits = i + SHAPE.len() <= chars.len()
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && chars
                .get(i + SHAPE.len())
                .is_none_or(|c| !c.is_ascii_alphanumeric())
            && SHAPE.iter().enumerate().all(|(k, &shape)| {
                let c = chars[i + k];
                if shape == b'-' {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if fits {
            out.push_str("<uuid>");
            i += SHAPE.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Masks one whitespace-free word: punctuation around it is kept, its core is classified.
fn mask_word(word: &str) -> String {
    const LEADING: &str = "([{<\"'";
    const TRAILING: &str = ")]}>,;:.!?\"'";
    let start = word.len() - word.trim_start_matches(|c| LEADING.contains(c)).len();
    let rest = &word[start..];
    let core = rest.trim_end_matches(|c| TRAILING.contains(c));
    let (lead, trail) = (&word[..start], &rest[core.len()..]);
    format!("{lead}{}{trail}", mask_core(core))
}

fn mask_core(core: &str) -> String {
    if core.is_empty() || (core.starts_with('<') && core.ends_with('>')) {
        return core.to_owned();
    }
    if core.contains("://") {
        return "<url>".to_owned();
    }
    if is_email(core) {
        return "<email>".to_owned();
    }
    if is_ipv6(core) {
        return "<ip>".to_owned();
    }
    if is_path(core) {
        return "<path>".to_owned();
    }
    // Split on separators that join independent values (key=value, host:port, a,b) and mask
    // each piece on its own.
    let mut out = String::new();
    let mut piece = String::new();
    for c in core.chars() {
        if "=:,;()[]{}|".contains(c) {
            out.push_str(&mask_piece(&piece));
            piece.clear();
            out.push(c);
        } else {
            piece.push(c);
        }
    }
    out.push_str(&mask_piece(&piece));
    out
}

fn mask_piece(piece: &str) -> String {
    if piece.is_empty() {
        return String::new();
    }
    if is_ipv4(piece) {
        return "<ip>".to_owned();
    }
    if is_path(piece) {
        return "<path>".to_owned();
    }
    if is_host(piece) {
        return "<host>".to_owned();
    }
    if is_hex_id(piece) {
        return "<hex>".to_owned();
    }
    if is_long_id(piece) {
        return "<id>".to_owned();
    }
    if let Some(separator) = piece.rfind(['-', '_']) {
        let suffix = &piece[separator + 1..];
        if suffix.len() >= 6 && is_mixed_alphanumeric(suffix) {
            return format!("{}<id>", mask_numbers(&piece[..=separator]));
        }
    }
    mask_numbers(piece)
}

/// Replaces runs of digits (with decimal parts, `1.2.3` counts as one) that do not follow a
/// letter by `<num>`.
fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphabetic() {
            // A word, digits glued to it included (`v2`, `sha256`), stays as it is.
            while i < chars.len() && chars[i].is_alphanumeric() {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        while i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
        out.push_str("<num>");
    }
    out
}

fn is_email(text: &str) -> bool {
    let mut parts = text.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }
        _ => false,
    }
}

fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.len() <= 3
                && part.chars().all(|c| c.is_ascii_digit())
                && part.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

fn is_ipv6(text: &str) -> bool {
    text.matches(':').count() >= 2
        && text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

fn is_path(text: &str) -> bool {
    let bytes = text.as_bytes();
    let windows_drive = bytes.len() > 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && (bytes[2] == b'\\' || bytes[2] == b'/');
    (text.len() > 1 && (text.starts_with('/') || text.starts_with('\\')))
        || text.starts_with("~/")
        || text.starts_with("./")
        || text.starts_with("../")
        || windows_drive
        || text.matches('/').count() >= 2
        || text.matches('\\').count() >= 2
}

const HOST_SUFFIXES: &[&str] = &[
    "com",
    "net",
    "org",
    "io",
    "dev",
    "app",
    "ai",
    "co",
    "cloud",
    "local",
    "internal",
    "lan",
    "svc",
    "cluster",
    "localdomain",
    "us",
    "uk",
    "de",
    "eu",
    "fr",
    "jp",
];

fn is_host(text: &str) -> bool {
    if text.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let labels: Vec<&str> = text.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| {
            HOST_SUFFIXES
                .iter()
                .any(|suffix| tld.eq_ignore_ascii_case(suffix))
        })
}

fn is_hex_id(text: &str) -> bool {
    if let Some(digits) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit());
    }
    text.len() >= 8
        && text.chars().all(|c| c.is_ascii_hexdigit())
        && text.chars().any(|c| c.is_ascii_digit())
        && text.chars().any(|c| c.is_ascii_alphabetic())
}

fn is_long_id(text: &str) -> bool {
    text.len() >= 16
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && is_mixed_alphanumeric(text)
}

fn is_mixed_alphanumeric(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && text.chars().any(|c| c.is_ascii_digit())
        && text.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(message: &str, expected: &str) {
        assert_eq!(normalize(message), expected, "normalising {message:?}");
    }

    /// Found by the property test: the escaped closing quote kept the string open until the
    /// word inside became a placeholder; the template must be a fixpoint.
    #[test]
    fn a_quote_revealed_by_masking_is_masked_too() {
        check("'\\A\\'", "<str>");
        check("no such key '\\A\\' here", "no such key <str> here");
        for message in ["'\\A\\'", "a \"b\\\" c", "x '\\y'"] {
            let template = normalize(message);
            assert_eq!(normalize(&template), template, "{message:?}");
        }
    }

    #[test]
    fn masks_known_shapes() {
        check("timeout after 30012 ms", "timeout after <num> ms");
        check("timeout after 30012ms", "timeout after <num>ms");
        check("took 1.25s, limit 1.0s", "took <num>s, limit <num>s");
        check(
            "task 550e8400-e29b-41d4-a716-446655440000 failed",
            "task <uuid> failed",
        );
        check(
            "job-550e8400-e29b-41d4-a716-446655440000 lost",
            "job-<uuid> lost",
        );
        check(
            "connect ECONNREFUSED 10.0.0.7:8080",
            "connect ECONNREFUSED <ip>:<num>",
        );
        check("connection to ::1 reset", "connection to <ip> reset");
        check(
            "GET http://render.internal:9000/v1/beat?id=7 returned 503",
            "GET <url> returned <num>",
        );
        check(
            "open /var/lib/jarvis/beat-17.wav: no such file",
            "open <path>: no such file",
        );
        check(r"open C:\data\beat.wav failed", "open <path> failed");
        check(
            "cannot resolve db.internal (try localhost)",
            "cannot resolve <host> (try <host>)",
        );
        check("notify ops@example.com failed", "notify <email> failed");
        check("segfault at 0x7f3a9c", "segfault at <hex>");
        check("commit deadbeef42 missing", "commit <hex> missing");
        check("request req-abc123xyz failed", "request req-<id> failed");
        check(
            "token eyJhbGciOiJIUzI1NiJ9abc expired",
            "token <id> expired",
        );
        check(
            r#"unknown genre "polka" requested"#,
            "unknown genre <str> requested",
        );
        check(
            "no such key 'a1' (see `docs`)",
            "no such key <str> (see <str>)",
        );
        check("retry_count=3 of 5", "retry_count=<num> of <num>");
    }

    #[test]
    fn keeps_words_and_glued_version_numbers() {
        check("sha256 mismatch in v2 api", "sha256 mismatch in v2 api");
        check("don't retry: it's final", "don't retry: it's final");
        check("config.yaml is invalid", "config.yaml is invalid");
        check("  many   spaces\tand\nlines ", "many spaces and lines");
        check("", "");
    }

    #[test]
    fn the_issue_example_is_one_group() {
        assert_eq!(
            fingerprint("timeout after 30012 ms"),
            fingerprint("timeout after 29877 ms")
        );
        assert_ne!(
            fingerprint("timeout after 30012 ms"),
            fingerprint("render failed after 30012 ms")
        );
    }

    #[test]
    fn fingerprint_is_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(Fingerprint::of_template("").as_str(), "cbf29ce484222325");
        assert_eq!(Fingerprint::of_template("a").as_str(), "af63dc4c8601ec8c");
        assert_eq!(
            Fingerprint::of_template("foobar").as_str(),
            "85944171f73967e8"
        );
    }

    #[test]
    fn templates_are_bounded() {
        let long = "word ".repeat(1_000);
        assert!(normalize(&long).chars().count() <= MAX_TEMPLATE_CHARS);
        let one_word = "x".repeat(10_000);
        assert_eq!(normalize(&one_word).chars().count(), MAX_TEMPLATE_CHARS);
        let mut groups = FailureGroups::new();
        groups.observe(&long);
        let (_, group) = &groups.top(1)[0];
        assert!(group.example.chars().count() <= MAX_EXAMPLE_CHARS);
    }

    #[test]
    fn groups_count_and_keep_the_shortest_example() {
        let mut groups = FailureGroups::new();
        groups.observe("timeout after 30012 ms");
        groups.observe("timeout after 299 ms");
        groups.observe("out of memory");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups.total(), 3);
        let top = groups.top(1);
        assert_eq!(top[0].1.count, 2);
        assert_eq!(top[0].1.template, "timeout after <num> ms");
        assert_eq!(top[0].1.example, "timeout after 299 ms");
        assert!(FailureGroups::new().top(5).is_empty());
    }

    #[test]
    fn drain_merges_templates_that_differ_in_one_word() {
        let mut groups = FailureGroups::new();
        for _ in 0..3 {
            groups.observe("render failed for genre metal");
        }
        groups.observe("render failed for genre jazz");
        groups.observe("out of memory");
        let clusters = cluster_templates(&groups, 0.75);
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0].template, "render failed for genre <*>");
        assert_eq!(clusters[0].count, 4);
        assert_eq!(clusters[0].fingerprints.len(), 2);
        assert_eq!(clusters[0].example, "render failed for genre jazz");
        // Similarity 1 (or NaN) keeps distinct templates apart.
        assert_eq!(cluster_templates(&groups, 1.0).len(), 3);
        assert_eq!(cluster_templates(&groups, f64::NAN).len(), 3);
    }
}
