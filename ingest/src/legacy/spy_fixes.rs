//! Per-agent repairs of pprof uploads, for profiles that old or unusual agents get wrong.

use std::collections::HashMap;

use flamedb_proto::google::v1::Profile;

use super::pprof_names::{SampleTypeConfigMap, string_at};

/// End of 1970 in Unix nanoseconds.
const END_OF_1970_NANOS: i64 = 365 * 86_400 * 1_000_000_000;

/// Old py-spy, rbspy and pyroscope-rs sent `time_nanos` in microseconds (landing in 1970) or
/// not at all; such a time is replaced by the request's `from`.
pub fn fix_time(profile: &mut Profile, from_nanos: i64) {
    if (0..END_OF_1970_NANOS).contains(&profile.time_nanos) {
        profile.time_nanos = from_nanos;
    }
}

/// Agents whose function names alone are ambiguous (`fib` in many files).
fn is_scripting_spy(spy_name: &str) -> bool {
    matches!(spy_name, "pyspy" | "rbspy" | "scripting")
}

/// Makes function names of scripting-language agents unique by prefixing the file name:
/// `"<filename> <function>"`. py-spy already qualifies absolute paths elsewhere, so only its
/// relative file names are rewritten. Functions without a file name are left alone.
pub fn rewrite_scripting_function_names(profile: &mut Profile, spy_name: &str) {
    if !is_scripting_spy(spy_name) {
        return;
    }
    let mut interned: Option<HashMap<String, i64>> = None;
    for i in 0..profile.function.len() {
        let Some(f) = profile.function.get(i) else {
            break;
        };
        let filename = string_at(profile, f.filename);
        if filename.is_empty() || (spy_name == "pyspy" && filename.starts_with('/')) {
            continue;
        }
        let new_name = format!("{filename} {}", string_at(profile, f.name));
        let table = interned.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(profile.string_table.len());
            for (idx, s) in profile.string_table.iter().enumerate() {
                m.entry(s.clone()).or_insert(idx as i64);
            }
            m
        });
        let idx = match table.get(&new_name) {
            Some(&idx) => idx,
            None => {
                let idx = profile.string_table.len() as i64;
                profile.string_table.push(new_name.clone());
                table.insert(new_name, idx);
                idx
            }
        };
        if let Some(f) = profile.function.get_mut(i) {
            f.name = idx;
        }
    }
}

/// Some .NET agent versions are detected by spy name, or — when the spy name is missing — by
/// their config, the only one that spells a sample type `inuse-space`.
pub fn is_dotnet(spy_name: &str, config: Option<&SampleTypeConfigMap>) -> bool {
    spy_name == "dotnetspy"
        || (spy_name == "unknown" && config.is_some_and(|c| matches!(c.get("inuse-space"), Some(Some(_)))))
}

/// Broken .NET profiles leave every function id 0 while emitting one function per location in
/// the same order; giving each function its location's id makes the line references resolve.
pub fn repair_dotnet_function_ids(profile: &mut Profile) {
    if profile.function.is_empty()
        || profile.function.iter().any(|f| f.id != 0)
        || profile.function.len() != profile.location.len()
    {
        return;
    }
    for (f, l) in profile.function.iter_mut().zip(&profile.location) {
        f.id = l.id;
    }
}

/// .NET names sample types like `inuse-space`; `-` is not allowed there, so it becomes `_`.
pub fn fix_dotnet_sample_types(profile: &mut Profile) {
    let indexes: Vec<i64> = profile.sample_type.iter().map(|vt| vt.r#type).collect();
    for idx in indexes {
        let Some(s) = usize::try_from(idx).ok().and_then(|i| profile.string_table.get_mut(i)) else {
            continue;
        };
        if s.contains('-') {
            *s = s.replace('-', "_");
        }
    }
}

#[cfg(test)]
mod tests {
    use flamedb_proto::google::v1::{Function, Location, ValueType};

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn scripting_profile() -> Profile {
        Profile {
            string_table: strings(&["", "fib", "app/burn.py", "main", "/usr/lib/x.py", "anon"]),
            function: vec![
                Function { id: 1, name: 1, filename: 2, ..Default::default() },
                Function { id: 2, name: 3, filename: 4, ..Default::default() },
                Function { id: 3, name: 5, filename: 0, ..Default::default() },
                Function { id: 4, name: 1, filename: 2, ..Default::default() },
            ],
            ..Default::default()
        }
    }

    fn names(p: &Profile) -> Vec<&str> {
        p.function.iter().map(|f| string_at(p, f.name)).collect()
    }

    #[test]
    fn time_in_1970_is_replaced() {
        let from = 1_795_375_880_000_000_000;
        for (t, want) in [
            (0, from),
            (1_795_375_880_000_000, from), // microseconds: lands in 1970
            (END_OF_1970_NANOS - 1, from),
            (END_OF_1970_NANOS, END_OF_1970_NANOS),
            (1_795_375_881_000_000_000, 1_795_375_881_000_000_000),
            (-5, -5),
        ] {
            let mut p = Profile { time_nanos: t, ..Default::default() };
            fix_time(&mut p, from);
            assert_eq!(p.time_nanos, want, "time {t}");
        }
    }

    #[test]
    fn pyspy_rewrites_only_relative_files() {
        let mut p = scripting_profile();
        rewrite_scripting_function_names(&mut p, "pyspy");
        assert_eq!(names(&p), vec!["app/burn.py fib", "main", "anon", "app/burn.py fib"]);
        // The shared new name is stored once.
        assert_eq!(p.function[0].name, p.function[3].name);
        assert_eq!(p.string_table.len(), 7);
    }

    #[test]
    fn rbspy_and_scripting_rewrite_absolute_files_too() {
        for spy in ["rbspy", "scripting"] {
            let mut p = scripting_profile();
            rewrite_scripting_function_names(&mut p, spy);
            assert_eq!(names(&p), vec!["app/burn.py fib", "/usr/lib/x.py main", "anon", "app/burn.py fib"]);
        }
    }

    #[test]
    fn other_spies_are_untouched() {
        let mut p = scripting_profile();
        rewrite_scripting_function_names(&mut p, "gospy");
        assert_eq!(p, scripting_profile());
    }

    #[test]
    fn dotnet_detection() {
        let with_dash: SampleTypeConfigMap =
            [("inuse-space".to_string(), Some(Default::default()))].into_iter().collect();
        assert!(is_dotnet("dotnetspy", None));
        assert!(is_dotnet("unknown", Some(&with_dash)));
        assert!(!is_dotnet("gospy", Some(&with_dash)));
        assert!(!is_dotnet("unknown", None));
    }

    #[test]
    fn dotnet_function_ids_and_sample_types() {
        let mut p = Profile {
            string_table: strings(&["", "inuse-space", "bytes", "alloc-objects-x"]),
            sample_type: vec![ValueType { r#type: 1, unit: 2 }, ValueType { r#type: 3, unit: 2 }],
            function: vec![Function::default(), Function::default()],
            location: vec![Location { id: 7, ..Default::default() }, Location { id: 9, ..Default::default() }],
            ..Default::default()
        };
        repair_dotnet_function_ids(&mut p);
        assert_eq!(p.function.iter().map(|f| f.id).collect::<Vec<_>>(), vec![7, 9]);
        fix_dotnet_sample_types(&mut p);
        assert_eq!(p.string_table[1], "inuse_space");
        assert_eq!(p.string_table[3], "alloc_objects_x");

        // Ids already set, or counts that differ: nothing to repair.
        let mut q = p.clone();
        q.function[0].id = 0;
        repair_dotnet_function_ids(&mut q);
        assert_eq!(q.function[0].id, 0);
        let mut r = Profile { function: vec![Function::default()], ..Default::default() };
        repair_dotnet_function_ids(&mut r);
        assert_eq!(r.function[0].id, 0);
    }
}
