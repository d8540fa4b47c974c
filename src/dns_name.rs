//! The label rules of DNS host names, shared by the VM's hostname and the
//! egress allow-list's names.

/// Whether every dot-separated label of `name` is 1 to 63 bytes of
/// letters, digits and inner hyphens (and underscores, when
/// `underscore`: service names such as `_acme.example.com` carry them).
/// Lengths of the whole name are the caller's.
pub(crate) fn labels_ok(name: &str, underscore: bool) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_'))
    })
}
