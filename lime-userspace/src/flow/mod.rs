//! The rule model shared by the driver, the reference classifier and the OpenFlow layer:
//! what a rule matches ([`Match`]), what it does ([`Instructions`]), and the typed errors
//! for rules the datapath cannot take.
//!
//! # Layout
//! - [`matching`]: matches, prerequisites, compilation to (value, mask) flow keys, and
//!   the OpenFlow relations between matches (covers, overlaps).
//! - [`actions`]: actions and instructions, compilation to rule programs.
pub mod actions;
pub mod matching;

pub use actions::{Action, Instructions, NO_BUFFER};
pub use matching::{Masked, Match};
use serde::{Deserialize, Serialize};

/// A rule as a controller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Table id.
    pub table: u8,
    /// Priority; higher wins.
    pub priority: u16,
    /// What it matches.
    pub matches: Match,
    /// What it does.
    pub instructions: Instructions,
    /// Opaque controller cookie.
    pub cookie: u64,
    /// Idle timeout in seconds (0: none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0: none).
    pub hard_timeout: u16,
    /// OpenFlow flow-mod flags (SEND_FLOW_REM etc.), kept for the OpenFlow layer.
    pub flags: u16,
}

impl Rule {
    /// A rule in `table` with `priority`, no cookie, no timeouts.
    #[must_use]
    pub fn new(table: u8, priority: u16, matches: Match, instructions: Instructions) -> Self {
        Self {
            table,
            priority,
            matches,
            instructions,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
        }
    }

    /// Validate match and instructions together.
    pub fn validate(&self) -> Result<(), FlowError> {
        if usize::from(self.table) >= lime_common::limits::MAX_TABLES {
            return Err(FlowError::BadTable { table: self.table });
        }
        self.matches.validate()?;
        self.instructions.validate(self.table, &self.matches)
    }
}

/// Why a rule cannot be installed. Each maps to an OpenFlow error in the OpenFlow layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// A field's prerequisite is missing (OFPBMC_BAD_PREREQ).
    #[error("match field {field} needs a matching {needs}")]
    BadPrerequisite {
        /// The field.
        field: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// Value bits set outside the mask (OFPBMC_BAD_WILDCARDS).
    #[error("match field {field} has value bits outside its mask")]
    BadWildcards {
        /// The field.
        field: &'static str,
    },
    /// Out-of-range value (OFPBMC_BAD_VALUE).
    #[error("match field {field} has an invalid value")]
    BadValue {
        /// The field.
        field: &'static str,
    },
    /// Table id out of range (OFPFMFC_BAD_TABLE_ID).
    #[error("table {table} does not exist (tables are 0..{})", lime_common::limits::MAX_TABLES)]
    BadTable {
        /// The table.
        table: u8,
    },
    /// goto-table backwards or past the last table (OFPBIC_BAD_TABLE_ID).
    #[error("goto-table from {from} to {to} is not allowed")]
    BadGotoTable {
        /// Rule's table.
        from: u8,
        /// Target.
        to: u8,
    },
    /// Output to an unsupported or invalid port (OFPBAC_BAD_OUT_PORT).
    #[error("output to port {port:#x} is not supported")]
    BadOutPort {
        /// Port.
        port: u32,
    },
    /// Action needs a header the match does not guarantee (OFPBAC_MATCH_INCONSISTENT).
    #[error("{action} is inconsistent with the match (no VLAN tag guaranteed)")]
    MatchInconsistent {
        /// The action.
        action: &'static str,
    },
    /// Bad action argument (OFPBAC_BAD_ARGUMENT).
    #[error("{action} has an invalid argument")]
    BadArgument {
        /// The action.
        action: &'static str,
    },
    /// More actions than the datapath holds (OFPBAC_TOO_MANY).
    #[error("too many actions (at most {max})")]
    TooManyActions {
        /// Limit.
        max: usize,
    },
}
