//! The dependency graph: which services may start, and in which order.
//!
//! `after` and `requires` both order a service after its dependencies. They differ when a
//! dependency is missing: an unknown `after` target is warned about and ignored, while a
//! missing `requires` target keeps the service from starting. Services caught in a dependency
//! cycle do not start either (the error names the cycle); neither does anything that requires
//! them, and whatever is only `after` them starts without waiting for them.

use std::collections::{BTreeMap, BTreeSet};

use bootkit_common::service_def::ServiceDef;

/// A service that may start, with the services it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub def: ServiceDef,
    /// Every dependency that will run (`after` and `requires` together), by name.
    pub waits_for: Vec<String>,
}

/// The outcome of ordering: what starts, in a dependency order, and what does not, with why.
#[derive(Debug, Default)]
pub struct Plan {
    /// In dependency order: every service comes after all the services it waits for.
    pub services: Vec<Planned>,
    /// Services that will not start, with the reason, sorted by name.
    pub not_started: Vec<(String, String)>,
    /// Problems that do not stop any service (an unknown `after` target).
    pub warnings: Vec<String>,
}

/// Order `services`. `absent` gives, for names that exist but will not run (another boot mode,
/// a definition that failed to load), the reason, so that messages can say why.
pub fn plan(services: Vec<ServiceDef>, absent: &BTreeMap<String, String>) -> Plan {
    let mut graph = Graph::new(services);
    let mut warnings = Vec::new();
    graph.drop_unknown_dependencies(absent, &mut warnings);
    // Each round removes at least one cycle, so the number of services bounds the rounds.
    for _ in 0..=graph.nodes.len() {
        graph.propagate_not_started(&mut warnings);
        match graph.topological_order() {
            Ok(order) => return graph.into_plan(order, warnings),
            Err(cycle) => graph.reject_cycle(&cycle),
        }
    }
    // Unreachable: a cycle is rejected in every round. Still, fail safe: start nothing.
    let mut plan = Plan {
        warnings,
        ..Plan::default()
    };
    for name in graph.nodes.keys() {
        plan.not_started.push((
            name.clone(),
            "the dependency graph could not be ordered".into(),
        ));
    }
    plan
}

struct Node {
    def: ServiceDef,
    after: BTreeSet<String>,
    requires: BTreeSet<String>,
    not_started: Option<String>,
}

struct Graph {
    nodes: BTreeMap<String, Node>,
}

impl Graph {
    fn new(services: Vec<ServiceDef>) -> Graph {
        let nodes = services
            .into_iter()
            .map(|def| {
                let node = Node {
                    after: def.after.iter().cloned().collect(),
                    requires: def.requires.iter().cloned().collect(),
                    not_started: None,
                    def,
                };
                (node.def.name.clone(), node)
            })
            .collect();
        Graph { nodes }
    }

    fn drop_unknown_dependencies(
        &mut self,
        absent: &BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) {
        let known: BTreeSet<String> = self.nodes.keys().cloned().collect();
        let why_absent = |name: &str| {
            absent
                .get(name)
                .cloned()
                .unwrap_or_else(|| "there is no such service".into())
        };
        for (name, node) in &mut self.nodes {
            for unknown in node.after.iter().filter(|d| !known.contains(*d)) {
                warnings.push(format!(
                    "{name}: ignoring `after = {unknown}`: {}",
                    why_absent(unknown)
                ));
            }
            node.after.retain(|d| known.contains(d));
            if let Some(missing) = node.requires.iter().find(|d| !known.contains(*d)) {
                node.not_started = Some(format!("requires {missing}, but {}", why_absent(missing)));
            }
        }
    }

    /// Spread "not started" along `requires`, and cut `after` edges to services that will not
    /// start so that their dependents do not wait forever.
    fn propagate_not_started(&mut self, warnings: &mut Vec<String>) {
        for _ in 0..=self.nodes.len() {
            let stopped: BTreeSet<String> = self
                .nodes
                .iter()
                .filter(|(_, node)| node.not_started.is_some())
                .map(|(name, _)| name.clone())
                .collect();
            let mut changed = false;
            for (name, node) in &mut self.nodes {
                if node.not_started.is_some() {
                    continue;
                }
                if let Some(dep) = node.requires.iter().find(|d| stopped.contains(*d)) {
                    node.not_started = Some(format!("requires {dep}, which will not start"));
                    changed = true;
                }
                for dep in node.after.iter().filter(|d| stopped.contains(*d)) {
                    warnings.push(format!(
                        "{name}: starting without waiting for {dep}, which will not start"
                    ));
                }
                node.after.retain(|d| !stopped.contains(d));
            }
            if !changed {
                return;
            }
        }
    }

    fn is_active(&self, name: &str) -> bool {
        self.nodes
            .get(name)
            .is_some_and(|n| n.not_started.is_none())
    }

    fn dependencies<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a String> + 'a {
        node.after
            .iter()
            .chain(&node.requires)
            .filter(|d| self.is_active(d))
    }

    /// Kahn's algorithm over the services still planned to start; ties go by name so the
    /// order is stable. On a cycle, returns one cycle as a list of names.
    fn topological_order(&self) -> Result<Vec<String>, Vec<String>> {
        let active: Vec<&String> = self.nodes.keys().filter(|n| self.is_active(n)).collect();
        let mut placed = BTreeSet::new();
        let mut order = Vec::new();
        // Each pass places at least one service or stops, so passes are bounded by the count.
        for _ in 0..=active.len() {
            let ready: Vec<&String> = active
                .iter()
                .copied()
                .filter(|n| !placed.contains(*n))
                .filter(|n| {
                    self.dependencies(&self.nodes[*n])
                        .all(|d| placed.contains(d))
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            for name in ready {
                placed.insert(name.clone());
                order.push(name.clone());
            }
        }
        if order.len() == active.len() {
            return Ok(order);
        }
        let stuck = active.into_iter().find(|n| !placed.contains(*n));
        Err(stuck
            .map(|n| self.find_cycle_from(n, &placed))
            .unwrap_or_default())
    }

    /// Every unplaced service waits for at least one unplaced service, so walking from one
    /// along such dependencies must come back to a service already seen: that is the cycle.
    fn find_cycle_from(&self, start: &str, placed: &BTreeSet<String>) -> Vec<String> {
        let mut path: Vec<String> = vec![start.to_owned()];
        for _ in 0..=self.nodes.len() {
            let current = &self.nodes[path.last().map(String::as_str).unwrap_or(start)];
            let Some(next) = self.dependencies(current).find(|d| !placed.contains(*d)) else {
                break;
            };
            if let Some(at) = path.iter().position(|p| p == next) {
                return path.split_off(at);
            }
            path.push(next.clone());
        }
        path
    }

    fn reject_cycle(&mut self, cycle: &[String]) {
        let mut shown: Vec<&str> = cycle.iter().map(String::as_str).collect();
        if let Some(first) = cycle.first() {
            shown.push(first);
        }
        let reason = format!(
            "dependency cycle {}: remove one of these `after`/`requires` entries",
            shown.join(" -> ")
        );
        for name in cycle {
            if let Some(node) = self.nodes.get_mut(name) {
                node.not_started = Some(reason.clone());
            }
        }
    }

    fn into_plan(mut self, order: Vec<String>, warnings: Vec<String>) -> Plan {
        let mut plan = Plan {
            warnings,
            ..Plan::default()
        };
        for name in order {
            let Some(node) = self.nodes.remove(&name) else {
                continue;
            };
            let waits_for = node.after.union(&node.requires).cloned().collect();
            plan.services.push(Planned {
                def: node.def,
                waits_for,
            });
        }
        for (name, node) in self.nodes {
            let reason = node.not_started.unwrap_or_else(|| "not ordered".into());
            plan.not_started.push((name, reason));
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::service_def::parse;

    fn service(name: &str, after: &[&str], requires: &[&str]) -> ServiceDef {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            "command = \"/bin/true\"\nafter = [{}]\nrequires = [{}]",
            list(after),
            list(requires)
        );
        parse(name, &text).unwrap()
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.services.iter().map(|p| p.def.name.as_str()).collect()
    }

    fn reason<'a>(plan: &'a Plan, name: &str) -> &'a str {
        plan.not_started
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_str())
            .unwrap_or_else(|| panic!("{name} was planned to start"))
    }

    #[test]
    fn dependencies_come_first() {
        let plan = plan(
            vec![
                service("web", &["db"], &[]),
                service("db", &[], &["net"]),
                service("net", &[], &[]),
                service("a-log", &[], &[]),
            ],
            &BTreeMap::new(),
        );
        assert_eq!(names(&plan), ["a-log", "net", "db", "web"]);
        assert_eq!(plan.services[3].waits_for, ["db"]);
        assert!(plan.not_started.is_empty() && plan.warnings.is_empty());
    }

    #[test]
    fn unknown_after_is_a_warning_and_ignored() {
        let plan = plan(vec![service("web", &["ghost"], &[])], &BTreeMap::new());
        assert_eq!(names(&plan), ["web"]);
        assert!(plan.services[0].waits_for.is_empty());
        assert_eq!(
            plan.warnings,
            ["web: ignoring `after = ghost`: there is no such service"]
        );
    }

    #[test]
    fn missing_requires_stops_the_service_and_its_dependents() {
        let absent = BTreeMap::from([(
            "docker".to_string(),
            "it does not run in mode shell".to_string(),
        )]);
        let plan = plan(
            vec![
                service("worker", &[], &["docker"]),
                service("agent", &[], &["worker"]),
                service("logs", &["worker"], &[]),
            ],
            &absent,
        );
        assert_eq!(names(&plan), ["logs"]);
        assert_eq!(
            reason(&plan, "worker"),
            "requires docker, but it does not run in mode shell"
        );
        assert_eq!(
            reason(&plan, "agent"),
            "requires worker, which will not start"
        );
        assert_eq!(
            plan.warnings,
            ["logs: starting without waiting for worker, which will not start"]
        );
    }

    #[test]
    fn a_cycle_is_named_and_its_members_do_not_start() {
        let plan = plan(
            vec![
                service("a", &["c"], &[]),
                service("b", &["a"], &[]),
                service("c", &[], &["b"]),
                service("d", &[], &["a"]),
                service("e", &["b"], &[]),
                service("free", &[], &[]),
            ],
            &BTreeMap::new(),
        );
        assert_eq!(names(&plan), ["e", "free"]);
        let cycle = reason(&plan, "a");
        assert!(cycle.starts_with("dependency cycle "), "{cycle}");
        for member in ["a ", "b ", "c "] {
            assert!(cycle.contains(member), "{cycle}");
        }
        assert_eq!(reason(&plan, "b"), cycle);
        assert_eq!(reason(&plan, "d"), "requires a, which will not start");
    }

    #[test]
    fn two_separate_cycles_are_both_rejected() {
        let plan = plan(
            vec![
                service("a", &["b"], &[]),
                service("b", &["a"], &[]),
                service("x", &["y"], &[]),
                service("y", &["x"], &[]),
                service("z", &[], &[]),
            ],
            &BTreeMap::new(),
        );
        assert_eq!(names(&plan), ["z"]);
        assert!(
            reason(&plan, "a").contains("a -> b -> a")
                || reason(&plan, "a").contains("b -> a -> b")
        );
        assert!(reason(&plan, "y").contains("dependency cycle"));
    }
}
