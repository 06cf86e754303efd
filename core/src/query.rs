//! Query parameters that must each be given once: the JSONP record's, the
//! search's and the export's `format` (which value of a repeated one counts
//! would be a guess, and a proxy in front may take the other).

use crate::problem::{Code, Message, Problem};

/// Refuses each name of `known` given more than once among `names` (a
/// query's parameter names, in order), and a second name of `alike` (names
/// of one value, as `amount` and `reward`): one problem per repeated name,
/// at that name.
pub fn check_given_once<'a>(
    names: impl IntoIterator<Item = &'a str>,
    known: &[&str],
    alike: &[&str],
) -> Result<(), Problem> {
    let mut seen: Vec<&str> = Vec::new();
    let mut problems: Vec<Message> = Vec::new();
    for name in names.into_iter().filter(|n| known.contains(n)) {
        let twice = seen.contains(&name);
        let other = alike
            .contains(&name)
            .then(|| seen.iter().find(|s| alike.contains(s) && **s != name))
            .flatten();
        if (twice || other.is_some()) && !problems.iter().any(|m| m.path.as_deref() == Some(name)) {
            let message = match other {
                Some(other) if !twice => {
                    format!("`{other}` and `{name}` give one value: give one of them.")
                }
                _ => format!("The `{name}` parameter is given more than once: give it once."),
            };
            problems.push(Message::at(Code::InvalidValue, name, message));
        }
        if !twice {
            seen.push(name);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problem::many(problems))
    }
}
