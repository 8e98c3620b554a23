//! The table every benchmark prints: what was measured, the figure, the goal it is held to and
//! whether the goal is met, followed by how long the benchmark took.

#![allow(dead_code)]

use std::time::Instant;

/// One line of a benchmark table.
pub struct Row {
    what: String,
    figure: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    /// A figure held to a goal.
    pub fn goal(
        what: impl Into<String>,
        figure: impl Into<String>,
        goal: impl Into<String>,
        met: bool,
    ) -> Row {
        Row {
            what: what.into(),
            figure: figure.into(),
            goal: goal.into(),
            met: Some(met),
        }
    }

    /// A figure printed for information, with no goal of its own.
    pub fn info(what: impl Into<String>, figure: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            figure: figure.into(),
            goal: "-".into(),
            met: None,
        }
    }
}

/// A titled list of rows, printed as a Markdown table.
pub struct Table {
    title: String,
    rows: Vec<Row>,
    created: Instant,
}

impl Table {
    /// An empty table. Create it before measuring: the time from here to [`Table::print`] is
    /// printed as the time the benchmark took.
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            rows: Vec::new(),
            created: Instant::now(),
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Prints the table to stdout, and the time since the table was created.
    pub fn print(&self) {
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|row| {
                let met = match row.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                };
                [
                    row.what.clone(),
                    row.figure.clone(),
                    row.goal.clone(),
                    met.to_string(),
                ]
            })
            .collect();
        let header = ["what", "figure", "goal", "met"].map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for line in &cells {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let render = |line: &[String; 4]| {
            let padded: Vec<String> = line
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        println!("\n## {}\n", self.title);
        println!("{}", render(&header));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", rule.join("-|-"));
        for line in &cells {
            println!("{}", render(line));
        }
        println!(
            "\n{} took {:.0} s\n",
            self.title,
            self.created.elapsed().as_secs_f64()
        );
    }
}

/// A number from the environment variable `name`, or `default` when it is unset. Panics with
/// a message naming the variable when it is set but not a number.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {value:?}")),
        Err(_) => default,
    }
}
