//! Checks of `xdp` (the object itself is checked when it is loaded).

use super::report::Report;
use crate::Xdp;

pub(crate) fn check(xdp: &Xdp, report: &mut Report) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in xdp.programs.iter().enumerate() {
        let at = |field: &str| format!("xdp.programs[{i}].{field}");
        if !p.file.starts_with('/') {
            report.error(
                at("file"),
                format!("{:?} is not an absolute path to a BPF object", p.file),
            );
        }
        if p.hook != "ingress" && p.hook != "egress" {
            report.error(
                at("hook"),
                format!(
                    "{:?} is not a hook; allowed values: \"ingress\", \"egress\"",
                    p.hook
                ),
            );
        } else if seen.contains(&p.hook.as_str()) {
            report.error(
                at("hook"),
                format!("a second program at {:?}; one program per hook", p.hook),
            );
        } else {
            seen.push(&p.hook);
        }
        if p.section.is_empty() {
            report.error(at("section"), "empty; the default is \"xdp\"");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn errors(doc: &str) -> Vec<String> {
        let cfg: Config = serde_json::from_str(doc).unwrap();
        match cfg.validate() {
            Ok(()) => vec![],
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn programs_are_checked_by_field() {
        let e = errors(
            r#"{"port":{"backend":"sim"},"xdp":{"programs":[
                {"file":"fw.o"},
                {"file":"/a.o","hook":"sideways"},
                {"file":"/b.o","hook":"ingress","section":""}]}}"#,
        )
        .join("\n");
        assert!(
            e.contains("xdp.programs[0].file: \"fw.o\" is not an absolute path"),
            "{e}"
        );
        assert!(
            e.contains("xdp.programs[1].hook: \"sideways\" is not a hook; allowed values: \"ingress\", \"egress\""),
            "{e}"
        );
        assert!(
            e.contains("xdp.programs[2].hook: a second program at \"ingress\""),
            "{e}"
        );
        assert!(e.contains("xdp.programs[2].section: empty"), "{e}");
        assert!(
            errors(r#"{"port":{"backend":"sim"},"xdp":{"programs":[{"file":"/fw.o"}]}}"#)
                .is_empty()
        );
    }
}
