//! Profile type identity: `<name>:<sample type>:<sample unit>:<period type>:<period unit>`.

use std::fmt;

/// The five parts of a profile type id; any of them may be empty (py-spy has no period type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileType {
    pub name: String,
    pub sample_type: String,
    pub sample_unit: String,
    pub period_type: String,
    pub period_unit: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "profile-type selection must be of the form <name>:<sample-type>:<sample-unit>:<period-type>:<period-unit>(:delta), got({parts}): {id:?}"
)]
pub struct ProfileTypeError {
    pub parts: usize,
    pub id: String,
}

impl ProfileType {
    /// Parses a 5-part id, or a 6-part one whose last part (historically `delta`) is ignored.
    pub fn parse(id: &str) -> Result<Self, ProfileTypeError> {
        let parts: Vec<&str> = id.split(':').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return Err(ProfileTypeError { parts: parts.len(), id: id.to_string() });
        }
        Ok(Self {
            name: parts[0].to_string(),
            sample_type: parts[1].to_string(),
            sample_unit: parts[2].to_string(),
            period_type: parts[3].to_string(),
            period_unit: parts[4].to_string(),
        })
    }

    /// The 5-part id, the value of the `__profile_type__` label.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:{}:{}", self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_five_and_six_parts() {
        let t = ProfileType::parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds").unwrap();
        assert_eq!(t.sample_type, "cpu");
        assert_eq!(t.id(), "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        let t = ProfileType::parse("process_cpu:samples:count::milliseconds:delta").unwrap();
        assert_eq!(t.period_type, "");
        assert_eq!(t.id(), "process_cpu:samples:count::milliseconds");
        let e = ProfileType::parse("a:b").unwrap_err();
        assert_eq!(e.parts, 2);
    }
}
