//! Priorities: a job is high, normal or low, and each level has a ready stream of its own under
//! the queue's hash tag (normal is the queue's one stream of before, so a queue that never uses
//! priorities is unchanged). How a worker serves the levels is its [`Service`]: strictly
//! (higher first, always) or weighted (each claim splits its batch by weight, so low jobs are
//! served even under a flood of high ones).

use rand::Rng;

/// How urgent a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Served before normal jobs (strict), or more often (weighted).
    High,
    /// Every job's priority unless it says otherwise.
    #[default]
    Normal,
    /// Served after normal jobs (strict), or less often (weighted).
    Low,
}

impl Priority {
    /// Every level, highest first: the order streams are read in.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// Its name on the command line, in the wire format and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// Its place in [`Priority::ALL`].
    pub fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }

    /// The level named `text` (as [`Priority::name`] spells it).
    pub fn parse(text: &[u8]) -> Option<Self> {
        match text {
            b"high" => Some(Priority::High),
            b"normal" => Some(Priority::Normal),
            b"low" => Some(Priority::Low),
            _ => None,
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Priority::parse(s.as_bytes()).ok_or_else(|| format!("expected high, normal or low, got {s:?}"))
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The weights of [`Service::weighted`]: high, normal, low.
pub const DEFAULT_WEIGHTS: [u32; 3] = [6, 3, 1];

/// How a worker shares its claims among the levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Higher levels first: a low job waits while any high or normal job waits.
    Strict,
    /// Each claim of `n` jobs gives every level a share of `n` drawn by its weight (high,
    /// normal, low), then fills what a level could not use from the others, highest first. No
    /// level with a weight above zero starves.
    Weighted([u32; 3]),
}

impl Default for Service {
    fn default() -> Self {
        Service::weighted()
    }
}

impl Service {
    /// Weighted service with the [`DEFAULT_WEIGHTS`].
    pub fn weighted() -> Self {
        Service::Weighted(DEFAULT_WEIGHTS)
    }

    /// How many of a claim of `count` jobs each level is offered first (high, normal, low). A
    /// claim then fills what is left from the levels highest first, so no slot goes unused
    /// while any level has work.
    pub fn shares(&self, count: usize, rng: &mut impl Rng) -> [usize; 3] {
        match *self {
            Service::Strict => [count, 0, 0],
            Service::Weighted(w) => {
                let total: u32 = w.iter().sum();
                let mut shares = [0usize; 3];
                if total == 0 {
                    return [count, 0, 0];
                }
                // Whole shares by weight, and the rest drawn by weight one by one: a claim of
                // one job goes to low one time in ten with 6/3/1.
                let mut left = count;
                for (i, &wi) in w.iter().enumerate() {
                    shares[i] = count * wi as usize / total as usize;
                    left -= shares[i];
                }
                for _ in 0..left {
                    let mut pick = rng.random_range(0..total);
                    let level = w.iter().position(|&wi| {
                        if pick < wi {
                            return true;
                        }
                        pick -= wi;
                        false
                    });
                    shares[level.unwrap_or(0)] += 1;
                }
                shares
            }
        }
    }
}

impl std::str::FromStr for Service {
    type Err = String;

    /// `strict`, `weighted` (6/3/1) or `weighted:H,N,L`.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected strict, weighted, or weighted:H,N,L (three whole numbers, not all 0)";
        match s {
            "strict" => Ok(Service::Strict),
            "weighted" => Ok(Service::weighted()),
            _ => {
                let weights = s.strip_prefix("weighted:").ok_or_else(|| format!("{expected}, got {s:?}"))?;
                let parsed: Vec<u32> = weights
                    .split(',')
                    .map(|w| w.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("{expected}, got {s:?}"))?;
                match parsed.as_slice() {
                    &[h, n, l] if h + n + l > 0 && h + n + l <= 1_000_000 => Ok(Service::Weighted([h, n, l])),
                    _ => Err(format!("{expected}, got {s:?}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_normal_is_the_default() {
        for p in Priority::ALL {
            assert_eq!(p.name().parse::<Priority>().unwrap(), p);
            assert_eq!(Priority::ALL[p.index()], p);
        }
        assert_eq!(Priority::default(), Priority::Normal);
        assert!("urgent".parse::<Priority>().is_err());
    }

    #[test]
    fn strict_offers_everything_to_high_and_weighted_splits_by_weight() {
        let mut rng = rand::rng();
        assert_eq!(Service::Strict.shares(8, &mut rng), [8, 0, 0]);
        let shares = Service::weighted().shares(10, &mut rng);
        assert_eq!(shares, [6, 3, 1]);
        let mut low = 0;
        for _ in 0..10_000 {
            let s = Service::weighted().shares(1, &mut rng);
            assert_eq!(s.iter().sum::<usize>(), 1);
            low += s[2];
        }
        assert!((500..1500).contains(&low), "a claim of one goes to low about one time in ten: {low}");
    }

    #[test]
    fn services_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("strict".parse::<Service>().unwrap(), Service::Strict);
        assert_eq!("weighted".parse::<Service>().unwrap(), Service::Weighted([6, 3, 1]));
        assert_eq!("weighted:5,2,1".parse::<Service>().unwrap(), Service::Weighted([5, 2, 1]));
        for bad in ["fair", "weighted:1,2", "weighted:0,0,0", "weighted:a,b,c", "weighted:-1,2,3"] {
            let e = bad.parse::<Service>().unwrap_err();
            assert!(e.contains("expected strict"), "{bad}: {e}");
        }
    }
}
