//! Fuzzes the provisioner's workflow templates (`provisioner::template`): arbitrary text is
//! rendered with a hardware map as a workflow is made (`substitute`), and the text and its
//! rendering are parsed and validated as Tinkerbell YAML (`Template::parse`). Nothing may
//! panic, and a template that parses has what validation promises.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use provisioner::template::{Template, substitute};

fn check(yaml: &str) {
    if let Ok(template) = Template::parse(yaml) {
        assert!(!template.tasks.is_empty(), "a parsed template has tasks");
        for task in &template.tasks {
            assert!(!task.actions.is_empty(), "a parsed task has actions");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    let hardware = BTreeMap::from([
        ("device_1".to_string(), "52:54:00:12:34:56".to_string()),
        ("disk".to_string(), "/dev/sda".to_string()),
        ("worker_id".to_string(), "{{.device_1}}".to_string()),
    ]);
    if let Ok(rendered) = substitute(text, &hardware) {
        check(&rendered);
    }
});
