//! Every command line the documentation prints is a real one: the README, PERFORMANCE.md, the
//! comments of the scenario files and the compose file's commands. Each `conveyor …` line (also
//! `cargo run … -- …`) goes through the binary's own parser ([`conveyor::cli::parse_command_line`]),
//! so a flag that does not exist, a missing or extra positional argument or a value of the wrong
//! type fails here; each `local-cluster …` line is run with `--help` appended (that binary parses
//! its arguments in order and stops at `--help`, so a wrong one before it is an error); and each
//! `scenarios/<file>.toml` a line names must exist and load.
//!
//! Where the docs write placeholders, they stand for a value: `<scenario.toml>` and `…` become a
//! word, `[…]` optional parts are taken in, and a capital-letter placeholder (`N`, `R`) becomes
//! `1`. A span that is only `conveyor <command> [<subcommand>]` names the command in prose: it must
//! exist. Quoted words are split as the shell splits them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command line found in a file: where, and its text.
#[derive(Debug)]
struct Documented {
    place: String,
    line: String,
}

/// Candidate command lines of a Markdown text: every unindented line of a fenced block
/// (indented ones are program output), and every inline code span elsewhere (a span may go on
/// over a line break).
fn markdown_candidates(file: &str, text: &str) -> Vec<Documented> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut prose: Vec<(usize, &str)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let place = format!("{file}:{}", n + 1);
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            if !line.starts_with(char::is_whitespace) {
                out.push(Documented { place, line: line.to_owned() });
            }
        } else {
            prose.push((n + 1, line));
        }
    }
    // Spans of the prose: every other piece between backticks, lines joined by a space.
    let mut open: Option<(usize, String)> = None;
    for (n, line) in prose {
        for (i, piece) in line.split('`').enumerate() {
            if i > 0 {
                match open.take() {
                    Some((start, span)) => out.push(Documented { place: format!("{file}:{start}"), line: span }),
                    None => open = Some((n, String::new())),
                }
            }
            if let Some((_, span)) = open.as_mut() {
                span.push_str(piece);
            }
        }
        match open.as_mut() {
            // A blank line ends a paragraph, and with it any span left open.
            Some(_) if line.trim().is_empty() => open = None,
            Some((_, span)) => span.push(' '),
            None => {}
        }
    }
    out
}

/// The inline code spans of a line.
fn spans(line: &str) -> Vec<String> {
    line.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Candidates in the comments of a TOML file: spans, and comment lines that are a command.
fn comment_candidates(file: &str, text: &str) -> Vec<Documented> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(comment) = line.trim_start().strip_prefix('#') else { continue };
        let place = format!("{file}:{}", n + 1);
        out.extend(spans(comment).into_iter().map(|s| Documented { place: place.clone(), line: s }));
        if !comment.contains('`') {
            out.push(Documented { place, line: comment.to_owned() });
        }
    }
    out
}

/// The words of a candidate that is a command line for `conveyor` or `local-cluster` (program
/// name first, normalized to "conveyor" or "local-cluster"); None for anything else.
fn command_words(line: &str) -> Option<Vec<String>> {
    let mut words: Vec<String> = Vec::new();
    // Quoted words stay one word (`--json '{"n": 1}'`, a cron schedule), as the shell has them.
    let split = shlex::split(line).unwrap_or_else(|| line.split_whitespace().map(str::to_owned).collect());
    for raw in &split {
        // The line ends at a shell comment, a background `&`, a pipe, or prose in parentheses.
        if raw.starts_with('#') || raw.starts_with('(') || matches!(raw.as_str(), "&" | "|" | ";" | "&&") {
            break;
        }
        let word = if raw.starts_with('{') { raw.clone() } else { raw.replace(['[', ']'], "") };
        if !word.is_empty() {
            words.push(word);
        }
    }
    // A lone program name is prose ("`conveyor` needs these permissions").
    if words.len() < 2 {
        return None;
    }
    let program = words.first()?.clone();
    let mut words = match program.as_str() {
        "conveyor" => words,
        "cargo" if words.get(1).map(String::as_str) == Some("run") => {
            let rest = words.iter().position(|w| w == "--").map_or(&[][..], |i| &words[i + 1..]);
            // An example: it must exist; `myapp` embeds conveyor's command line, the others
            // have arguments of their own (tests/it/examples.rs runs them).
            if let Some(i) = words.iter().position(|w| w == "--example") {
                let name = words.get(i + 1)?;
                let file = repo().join("examples").join(format!("{name}.rs"));
                assert!(file.exists(), "`cargo run --example {name}`: there is no {}", file.display());
                if name != "myapp" {
                    return None;
                }
            }
            std::iter::once("conveyor".to_owned()).chain(rest.iter().cloned()).collect()
        }
        p if p == "local-cluster" || p.ends_with("/local-cluster") => {
            std::iter::once("local-cluster".to_owned()).chain(words[1..].iter().cloned()).collect()
        }
        _ => return None,
    };
    for w in words.iter_mut().skip(1) {
        let placeholder = (w.starts_with('<') && w.ends_with('>')) || w == "…" || w == "...";
        if placeholder {
            *w = "placeholder".to_owned();
        } else if !w.is_empty() && w.len() <= 4 && w.chars().all(|c| c.is_ascii_uppercase()) {
            *w = "1".to_owned();
        }
    }
    Some(words)
}

/// Scenario files a command names that are not placeholders (`scenarios/x.toml`,
/// `scenarios/<name>.toml`).
fn named_scenarios(words: &[String]) -> Vec<&str> {
    words
        .iter()
        .filter(|w| w.starts_with("scenarios/") && w.ends_with(".toml") && !w.contains('<'))
        .filter(|w| Path::new(w.as_str()).file_stem().is_some_and(|s| s.len() > 1))
        .map(String::as_str)
        .collect()
}

/// What is wrong with one command line, if anything.
fn problem(words: &[String]) -> Option<String> {
    for file in named_scenarios(words) {
        if let Err(e) = conveyor::bench::scenario::Scenario::load(&repo().join(file)) {
            return Some(format!("names {file}, which does not load: {e}"));
        }
    }
    match words[0].as_str() {
        "local-cluster" => {
            let out =
                Command::new(env!("CARGO_BIN_EXE_local-cluster")).args(&words[1..]).arg("--help").output().unwrap();
            (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
        _ => match conveyor::cli::parse_command_line(words) {
            Ok(()) => None,
            // `conveyor run` or `conveyor cron run` in prose names the command; it need not
            // carry its arguments.
            Err(e)
                if words.len() <= 3
                    && words.iter().all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                    && e.kind() == clap::error::ErrorKind::MissingRequiredArgument =>
            {
                None
            }
            Err(e) => Some(e.to_string().lines().next().unwrap_or_default().to_owned()),
        },
    }
}

/// The compose file's conveyor commands, with `${VAR:-default}` at its default.
fn compose_candidates() -> Vec<Documented> {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (name, service) in yaml["services"].as_mapping().unwrap() {
        let Some(command) = service["command"].as_sequence() else { continue };
        let words: Vec<String> = command
            .iter()
            .filter_map(|w| w.as_str())
            .map(|w| match (w.strip_prefix("${"), w.find(":-")) {
                (Some(_), Some(i)) => w[i + 2..].trim_end_matches('}').to_owned(),
                _ => w.to_owned(),
            })
            .collect();
        if words.first().is_some_and(|w| ["run", "produce", "worker"].contains(&w.as_str())) {
            let place = format!("docker-compose.yml service {}", name.as_str().unwrap_or("?"));
            out.push(Documented { place, line: format!("conveyor {}", words.join(" ")) });
        }
    }
    out
}

#[test]
fn every_command_line_the_docs_print_parses_and_names_real_files() {
    let mut candidates = Vec::new();
    for file in ["README.md", "PERFORMANCE.md"] {
        candidates.extend(markdown_candidates(file, &std::fs::read_to_string(repo().join(file)).unwrap()));
    }
    for entry in std::fs::read_dir(repo().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("scenarios/{}", path.file_name().unwrap().to_string_lossy());
        candidates.extend(comment_candidates(&name, &std::fs::read_to_string(&path).unwrap()));
    }
    candidates.extend(compose_candidates());
    let mut checked = 0;
    let mut failures = Vec::new();
    for d in &candidates {
        let Some(words) = command_words(&d.line) else { continue };
        checked += 1;
        println!("{}: {}", d.place, words.join(" "));
        if let Some(p) = problem(&words) {
            failures.push(format!("{}: `{}`: {p}", d.place, d.line.trim()));
        }
    }
    println!("checked {checked} documented command lines");
    assert!(checked >= 30, "only {checked} command lines found: the extraction is broken");
    assert!(failures.is_empty(), "command lines in the docs that do not work:\n{}", failures.join("\n"));
}

#[test]
fn the_check_catches_a_wrong_flag_a_wrong_positional_and_a_missing_file() {
    let words = |line: &str| command_words(line).unwrap();
    // What the docs used to say: `worker` takes its scenario as a positional argument.
    assert!(problem(&words("conveyor worker --scenario scenarios/cluster.toml")).is_some());
    assert!(problem(&words("conveyor worker scenarios/cluster.toml")).is_none());
    assert!(problem(&words("conveyor produce --duration 40s")).is_some(), "produce needs its scenario");
    assert!(problem(&words("conveyor run scenarios/quick.toml extra")).is_some(), "one positional too many");
    assert!(problem(&words("conveyor bench --min-ratio fast")).is_some(), "a value of the wrong type");
    assert!(problem(&words("conveyor run scenarios/no-such.toml")).is_some(), "a file that is not there");
    assert!(problem(&words("local-cluster --masters 3 --replicas 1")).is_none());
    assert!(problem(&words("local-cluster --master 3")).is_some(), "local-cluster's flags are checked too");
    // Placeholders and prose stand for values and commands.
    assert!(problem(&words("conveyor compare <baseline> <current> [--tolerance 10%]")).is_none());
    assert!(problem(&words("conveyor worker [scenario.toml] [--queue Q] [--count N]")).is_none());
    assert!(problem(&words("conveyor run")).is_none(), "a command named in prose");
    assert!(problem(&words("conveyor teleport")).is_some(), "a command that does not exist");
    assert_eq!(command_words("ACL SETUSER conveyor on"), None);
    assert_eq!(command_words("conveyor"), None, "the name alone is prose");
    let spans = markdown_candidates(
        "x.md",
        "with `local-cluster --node-timeout\n15000`) and\n```\nconveyor list\n  conveyor output line\n```\n",
    );
    let lines: Vec<&str> = spans.iter().map(|d| d.line.as_str()).collect();
    assert_eq!(
        lines,
        ["conveyor list", "local-cluster --node-timeout 15000"],
        "a span over a line break, output left out"
    );
    assert_eq!(
        words("cargo run --release -- run scenarios/quick.toml   # a comment"),
        ["conveyor", "run", "scenarios/quick.toml"]
    );
}

#[test]
fn the_readme_lists_every_key_the_key_module_documents() {
    let keys = std::fs::read_to_string(repo().join("src/runtime/queue/keys.rs")).unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let documented: Vec<&str> = keys
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `{conveyor:q}"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(documented.len() >= 20, "the key table of keys.rs was not found: {documented:?}");
    let missing: Vec<_> = documented.iter().filter(|k| !readme.contains(&format!("`{{conveyor:q}}{k}`"))).collect();
    assert!(missing.is_empty(), "README's table of keys lacks {missing:?}: copy it from src/runtime/queue/keys.rs");
}
