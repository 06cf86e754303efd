//! The destructive actions confirmed on a page of their own first
//! ([`Action`]), and what was just done, for the notice after a redirect
//! ([`Done`]).

use crate::request::Params;

/// A destructive action, confirmed on a page of its own first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Every count back to zero.
    Reset,
    /// The experiment removed.
    Delete,
}

impl Action {
    /// The last segment of its confirmation page's path and form action.
    pub fn path(self) -> &'static str {
        match self {
            Action::Reset => "reset",
            Action::Delete => "delete",
        }
    }

    /// The confirmation page's title.
    pub fn question(self) -> &'static str {
        match self {
            Action::Reset => "Reset the counts?",
            Action::Delete => "Delete this experiment?",
        }
    }

    /// What it does, said before it is done.
    pub fn warning(self) -> &'static str {
        match self {
            Action::Reset => {
                "Every variant's views and rewards go back to zero and the history is forgotten; \
                 the weights start again from equal. This cannot be undone."
            }
            Action::Delete => {
                "It is removed with every view and reward recorded for it, and pages stop seeing it. \
                 This cannot be undone."
            }
        }
    }

    /// The confirming button.
    pub fn button(self) -> &'static str {
        match self {
            Action::Reset => "Reset counts",
            Action::Delete => "Delete experiment",
        }
    }
}

/// What was just done, for the notice after the redirect (`?done=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// An experiment was created.
    Created,
    /// A new-experiment form sent again (reloaded, or after Back): the
    /// experiment it created the first time, nothing new.
    SentBefore,
    /// The edit form was saved.
    Saved,
    /// The counts were reset.
    Reset,
    /// An experiment was deleted.
    Deleted,
}

impl Done {
    /// The `done` parameter of a request (only these values; never its text).
    pub fn of(params: &Params) -> Option<Done> {
        match params.get("done")? {
            "created" => Some(Done::Created),
            "sent-before" => Some(Done::SentBefore),
            "saved" => Some(Done::Saved),
            "reset" => Some(Done::Reset),
            "deleted" => Some(Done::Deleted),
            _ => None,
        }
    }

    /// Its value in a redirect's query.
    pub fn param(self) -> &'static str {
        match self {
            Done::Created => "created",
            Done::SentBefore => "sent-before",
            Done::Saved => "saved",
            Done::Reset => "reset",
            Done::Deleted => "deleted",
        }
    }

    /// The notice shown.
    pub fn notice(self) -> &'static str {
        match self {
            Done::Created => "The experiment was created.",
            Done::SentBefore => {
                "That form had been sent before: this is the experiment it created (nothing new was created)."
            }
            Done::Saved => "Your changes were saved.",
            Done::Reset => "The counts were reset to zero.",
            Done::Deleted => "The experiment was deleted.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_is_one_of_four_notices_and_never_the_parameter_text() {
        for done in [Done::Created, Done::Saved, Done::Reset, Done::Deleted] {
            let params = Params::parse(&format!("done={}", done.param()));
            assert_eq!(Done::of(&params), Some(done));
        }
        assert_eq!(Done::of(&Params::parse("done=%3Cb%3E")), None);
    }
}
