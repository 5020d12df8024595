//! Fuzzes the provisioner's workflow templates (`provisioner::template`): arbitrary text is
//! rendered with a hardware map as a workflow is made (`substitute`), and the text and its
//! rendering are parsed and validated as Tinkerbell YAML (`Template::parse`). Nothing may
//! panic, and a template that parses has what validation promises. The same bytes are also a
//! node's serial put into a fixed template (issue 15 §2): the rendering has exactly the
//! template's one action, and the serial verbatim as its values.

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

/// One action whose environment holds the serial quoted, single-quoted and plain.
const SERIAL_TEMPLATE: &str = "version: \"0.1\"\nname: t\ntasks:\n  - name: os\n    worker: \"{{.device_1}}\"\n    actions:\n      - name: one\n        image: busybox\n        environment:\n          A: \"{{.serial}}\"\n          B: '{{.serial}}'\n          C: {{.serial}}\n";

fn check_serial(serial: &str) {
    let values = BTreeMap::from([
        ("device_1".to_string(), "52:54:00:12:34:56".to_string()),
        ("serial".to_string(), serial.to_string()),
    ]);
    let rendered = substitute(SERIAL_TEMPLATE, &values).expect("a value never breaks rendering");
    let template = Template::parse(&rendered).expect("a value never breaks the YAML");
    assert_eq!(template.tasks.len(), 1);
    let task = &template.tasks[0];
    assert_eq!(task.actions.len(), 1);
    assert_eq!(task.actions[0].image.as_deref(), Some("busybox"));
    for key in ["A", "B", "C"] {
        assert_eq!(task.actions[0].environment[key], serial);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    check_serial(text);
    let hardware = BTreeMap::from([
        ("device_1".to_string(), "52:54:00:12:34:56".to_string()),
        ("disk".to_string(), "/dev/sda".to_string()),
        ("worker_id".to_string(), "{{.device_1}}".to_string()),
    ]);
    if let Ok(rendered) = substitute(text, &hardware) {
        check(&rendered);
    }
});
