//! Keeps the reference pages from drifting: every setting of the settings table
//! (`pocketkv::config::settings`, the table that drives flags, the config file, the environment,
//! `--help` and CONFIG GET/SET) must have its row in `docs/configuration.md`, and every command
//! and subcommand of the command table (`pocketkv::command::table`) its section in
//! `docs/commands.md`. The failure says what is missing and what to add where.

use std::path::Path;

fn page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The cells of a Markdown table row, trimmed (`| a | b |` gives `["a", "b"]`).
fn cells(row: &str) -> Vec<&str> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split(" | ").map(str::trim).collect()
}

/// How the page writes a default: in backticks, or `(none)` when it is empty.
fn default_cell(default: &str) -> String {
    if default.is_empty() {
        "(none)".to_string()
    } else {
        format!("`{default}`")
    }
}

#[test]
fn every_setting_has_its_row_in_docs_configuration_md() {
    let text = page("configuration.md");
    let mut problems = Vec::new();
    for setting in pocketkv::config::settings() {
        let name = setting.name;
        let env = pocketkv::config::env_name(name);
        let default = default_cell(setting.default);
        let settable = if setting.settable { "yes" } else { "no" };
        let expected = format!(
            "| `{name}` | `--{name}` | `{env}` | {default} | {settable} | <one line of meaning> |"
        );
        let prefix = format!("| `{name}` |");
        let Some(row) = text.lines().find(|line| line.starts_with(&prefix)) else {
            problems.push(format!(
                "setting '{name}' has no row: add to the settings table of docs/configuration.md \
                 (in the section it belongs to)\n    {expected}"
            ));
            continue;
        };
        let got = cells(row);
        let want = [
            format!("`--{name}`"),
            format!("`{env}`"),
            default,
            settable.to_string(),
        ];
        let columns = ["flag", "environment variable", "default", "CONFIG SET"];
        for ((column, want), got) in columns.iter().zip(&want).zip(got.iter().skip(1)) {
            if want != got {
                problems.push(format!(
                    "setting '{name}': docs/configuration.md says {column} {got}, the settings \
                     table (src/config.rs) says {want}; the row should read\n    {expected}"
                ));
            }
        }
        if got.len() < 6 || got.get(5).is_some_and(|meaning| meaning.is_empty()) {
            problems.push(format!(
                "setting '{name}': its row needs six cells, the last one saying what it means\n    \
                 {expected}"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// A command's heading in docs/commands.md: `client|list` is `### CLIENT LIST`.
fn heading(name: &str) -> String {
    format!("### {}", name.replace('|', " ").to_ascii_uppercase())
}

#[test]
fn every_command_has_its_section_in_docs_commands_md() {
    let text = page("commands.md");
    let headings: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut known = Vec::new();
    let mut problems = Vec::new();
    for spec in pocketkv::command::table() {
        for spec in std::iter::once(spec).chain(spec.subcommands) {
            let want = heading(spec.name);
            if !headings.contains(&want.as_str()) {
                let syntax = format!("{} {}", &want[4..], spec.usage);
                problems.push(format!(
                    "command '{}' has no section: add `{want}` to docs/commands.md under the \
                     family '{}', with its syntax (`{}`), its reply in RESP and in the text \
                     dialect, and how it differs from Redis",
                    spec.name,
                    spec.group,
                    syntax.trim_end()
                ));
            }
            known.push(want);
        }
    }
    // And the other way round: a section for a command the server does not have is stale.
    for line in &headings {
        let is_command = line.strip_prefix("### ").is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b' ' || b == b'-')
        });
        if is_command && !known.iter().any(|k| k == line) {
            problems.push(format!(
                "docs/commands.md has `{line}`, a command the command table \
                 (src/command/*.rs COMMANDS) does not have: remove or rename the section"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}
