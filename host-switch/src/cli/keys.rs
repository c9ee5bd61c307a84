//! `host-switch keys load-components` and `host-switch keys list`: the key custodians' offline
//! ceremony (components read by `keystore::ceremony`, the key store checks them all again before
//! storing the combined key), and what they print.

use keystore::KeyInfo;

/// What a load printed: name, version, check value.
pub fn render_loaded(info: &KeyInfo) -> String {
    format!(
        "{} v{} loaded: usage {}, KCV {}, {} bytes",
        info.name, info.version, info.usage, info.kcv, info.length
    )
}

/// One line per key version.
pub fn render_list(keys: &[KeyInfo]) -> String {
    let mut out = String::from(
        "NAME                 VERSION  USAGE             KCV     BYTES  CREATED (UNIX)\n",
    );
    for k in keys {
        out.push_str(&format!(
            "{:<20} {:>7}  {:<16}  {}  {:>5}  {}\n",
            k.name.as_str(),
            k.version,
            k.usage.as_str(),
            k.kcv,
            k.length,
            k.created_unix
        ));
    }
    out
}
