//! Every `slipway` command documents its exit statuses in `--help`.

use std::process::Command;

#[test]
fn every_command_documents_its_exit_statuses() {
    let help = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--help")
        .output()
        .expect("run slipway --help");
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    // The command list: indented names under "Commands:", up to the next section.
    let commands: Vec<String> = text
        .split("Commands:")
        .nth(1)
        .expect("a command list")
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    let with_sub = [
        ("index", "check"),
        ("dead", "list"),
        ("dead", "show"),
        ("dead", "replay"),
        ("dead", "purge"),
    ];
    let mut invocations: Vec<Vec<String>> = commands
        .iter()
        .filter(|name| !with_sub.iter().any(|(parent, _)| parent == *name))
        .map(|name| vec![name.clone()])
        .collect();
    invocations.extend(
        with_sub
            .iter()
            .map(|(a, b)| vec![(*a).to_owned(), (*b).to_owned()]),
    );
    for args in invocations {
        let output = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(&args)
            .arg("--help")
            .output()
            .expect("run slipway CMD --help");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("Exit status") || text.contains("exit status") || text.contains("EXIT"),
            "slipway {} --help says nothing of its exit statuses:\n{text}",
            args.join(" ")
        );
    }
}
