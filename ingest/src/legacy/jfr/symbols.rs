//! Frame-name clean-up for JVM-generated classes and randomly named native libraries, so that
//! the same code gets the same frame name in every upload (otherwise each JVM run would create
//! new functions for lambdas, reflection accessors and extracted `.so` files). These are the
//! rewrites Pyroscope's JFR converter applies to every symbol of a recording.

use std::sync::LazyLock;

use regex::Regex;

struct Rule {
    pattern: Regex,
    replacement: &'static str,
}

fn rule(pattern: &str, replacement: &'static str) -> Option<Rule> {
    Regex::new(pattern).ok().map(|pattern| Rule { pattern, replacement })
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    [
        // jdk/internal/reflect/GeneratedMethodAccessor31
        rule(r"^(jdk/internal/reflect/GeneratedMethodAccessor)(\d+)$", "${1}_"),
        // org/example/OrderService$$Lambda$669/0x0000000800fd7318
        rule(r"^(.+\$\$Lambda\$)\d+[./](0x[\da-f]+|\d+)$", "${1}_"),
        // libzstd-jni-1.5.1-16931311898282279136.so
        rule(r"^(\.?/tmp/)?(libzstd-jni-\d+\.\d+\.\d+-)(\d+)(\.so)( \(deleted\))?$", "libzstd-jni-_.so"),
        // ./tmp/libamazonCorrettoCryptoProvider109b39cf33c563eb.so
        rule(
            r"^(\.?/tmp/)?(lib)?(amazonCorrettoCryptoProvider)(NativeLibraries\.)?([0-9a-f]{16})(/libcrypto|/libamazonCorrettoCryptoProvider)?(\.so)( \(deleted\))?$",
            "libamazonCorrettoCryptoProvider_.so",
        ),
        // libasyncProfiler-linux-x64-17b9a1d8156277a98ccc871afa9a8f69215f92.so
        rule(
            r"^(\.?/tmp/)?(libasyncProfiler)-(linux-arm64|linux-musl-x64|linux-x64|macos)-(17b9a1d8156277a98ccc871afa9a8f69215f92)(\.so)( \(deleted\))?$",
            "libasyncProfiler-_.so",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
});

/// Rewrites one symbol (a class or method name) with every rule in turn.
pub fn merge_generated(symbol: &str) -> String {
    let mut s = symbol.to_string();
    for r in RULES.iter() {
        if r.pattern.is_match(&s) {
            s = r.pattern.replace_all(&s, r.replacement).into_owned();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_rules_compile() {
        assert_eq!(RULES.len(), 5);
    }

    #[test]
    fn rewrites() {
        let cases = [
            ("jdk/internal/reflect/GeneratedMethodAccessor31", "jdk/internal/reflect/GeneratedMethodAccessor_"),
            ("org/example/OrderService$$Lambda$669/0x0000000800fd7318", "org/example/OrderService$$Lambda$_"),
            ("org/example/OrderService$$Lambda$669.0x0000000800fd7318", "org/example/OrderService$$Lambda$_"),
            ("a/B$$Lambda$12/123", "a/B$$Lambda$_"),
            ("libzstd-jni-1.5.1-16931311898282279136.so", "libzstd-jni-_.so"),
            ("/tmp/libzstd-jni-1.5.1-1693131.so (deleted)", "libzstd-jni-_.so"),
            ("./tmp/libamazonCorrettoCryptoProvider109b39cf33c563eb.so", "libamazonCorrettoCryptoProvider_.so"),
            (
                "./tmp/amazonCorrettoCryptoProviderNativeLibraries.7382c2f79097f415/libcrypto.so (deleted)",
                "libamazonCorrettoCryptoProvider_.so",
            ),
            ("libasyncProfiler-linux-x64-17b9a1d8156277a98ccc871afa9a8f69215f92.so", "libasyncProfiler-_.so"),
            ("java/lang/Thread", "java/lang/Thread"),
            ("run", "run"),
        ];
        for (input, want) in cases {
            assert_eq!(merge_generated(input), want, "{input}");
        }
    }
}
