//! The `call_site` stack-trace selector: keep only the stacks whose root-most frames are the given
//! names, whole (prefix included), as Profiles Drilldown asks when it focuses on a function.

use flamedb_exec::tree::FunctionTree;

/// The part of `tree` under the root-first path `call_site` (an empty tree when there is none).
pub fn filter(tree: &FunctionTree, call_site: &[&str]) -> FunctionTree {
    let view = tree.view();
    let mut node = FunctionTree::ROOT;
    for name in call_site {
        let Some(id) = tree.lookup(name) else {
            return FunctionTree::new();
        };
        match view.children(node).iter().find(|&&c| tree.name_id(c) == id) {
            Some(&c) => node = c,
            None => return FunctionTree::new(),
        }
    }
    let mut out = FunctionTree::new();
    let mut dst = FunctionTree::ROOT;
    for name in call_site {
        let n = out.intern(name);
        dst = out.child(dst, n);
    }
    out.add_self(dst, tree.self_value(node));
    let mut stack = vec![(node, dst)];
    while let Some((src, dst)) = stack.pop() {
        for &c in view.children(src) {
            let name = out.intern(tree.name(tree.name_id(c)));
            let n = out.child(dst, name);
            out.add_self(n, tree.self_value(c));
            stack.push((c, n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(t: &FunctionTree) -> Vec<(String, i64)> {
        let view = t.view();
        let mut out: Vec<(String, i64)> =
            (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), view.total(n))).collect();
        out.sort();
        out
    }

    #[test]
    fn keeps_whole_stacks_under_the_prefix() {
        let mut t = FunctionTree::new();
        t.insert_stack(&["main", "a", "x"], 3);
        t.insert_stack(&["main", "a"], 1);
        t.insert_stack(&["main", "b", "x"], 5);
        t.insert_stack(&["other_root", "a"], 7);
        let f = filter(&t, &["main", "a"]);
        assert_eq!(f.total(), 4);
        assert_eq!(totals(&f), vec![("main".into(), 4), ("main;a".into(), 4), ("main;a;x".into(), 3)]);
        assert!(filter(&t, &["main", "c"]).is_empty());
        assert!(filter(&t, &["nope"]).is_empty());
        assert_eq!(filter(&t, &[]).total(), t.total());
    }
}
