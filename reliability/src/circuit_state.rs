//! The states of a circuit breaker, apart from the breaker so that the registry's snapshots can
//! name them without depending on the breaker.

/// The state of a [`CircuitBreaker`](crate::CircuitBreaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls run; their outcomes are counted by the breaker's [`TripRule`](crate::TripRule).
    Closed,
    /// Calls are rejected at once until the cooldown has passed.
    Open,
    /// Up to `success_threshold` trial calls run at a time; enough successes close the circuit,
    /// one counted failure (or slow trial) opens it again.
    HalfOpen,
    /// Every call is rejected until [`CircuitBreaker::reset`](crate::CircuitBreaker::reset): set by [`CircuitBreaker::isolate`](crate::CircuitBreaker::isolate).
    Isolated,
}

pub(crate) const CLOSED: u8 = 0;
pub(crate) const OPEN: u8 = 1;
pub(crate) const HALF_OPEN: u8 = 2;
pub(crate) const ISOLATED: u8 = 3;

impl CircuitState {
    /// The state encoded by [`as_u8`](Self::as_u8); `None` for any other byte.
    pub(crate) const fn from_u8(state: u8) -> Option<Self> {
        match state {
            CLOSED => Some(CircuitState::Closed),
            OPEN => Some(CircuitState::Open),
            HALF_OPEN => Some(CircuitState::HalfOpen),
            ISOLATED => Some(CircuitState::Isolated),
            _ => None,
        }
    }

    /// The state as one byte, for atomics.
    pub(crate) const fn as_u8(self) -> u8 {
        match self {
            CircuitState::Closed => CLOSED,
            CircuitState::Open => OPEN,
            CircuitState::HalfOpen => HALF_OPEN,
            CircuitState::Isolated => ISOLATED,
        }
    }
}
