//! How many sagas a store holds in each status, and how many timers are pending: the numbers
//! behind the saga gauges. The store keeps them up to date on every change, so reading them
//! costs nothing per record, however many sagas a partition holds.

use super::state::SagaStatus;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SagaCensus {
    by_status: [i64; SagaStatus::ALL.len()],
    /// Pending timers: at most one per saga.
    pub timers: i64,
}

impl SagaCensus {
    pub fn count(&self, status: SagaStatus) -> i64 {
        self.by_status[index(status)]
    }

    /// Sagas not finished yet: running or compensating.
    pub fn active(&self) -> i64 {
        SagaStatus::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| self.count(*s))
            .sum()
    }

    /// Counts one saga leaving `from` (`None`: it is new) for `to` (`None`: it is gone).
    pub(crate) fn moved(&mut self, from: Option<SagaStatus>, to: Option<SagaStatus>) {
        if from == to {
            return;
        }
        if let Some(s) = from {
            self.by_status[index(s)] -= 1;
        }
        if let Some(s) = to {
            self.by_status[index(s)] += 1;
        }
    }
}

fn index(status: SagaStatus) -> usize {
    SagaStatus::ALL
        .iter()
        .position(|s| *s == status)
        .expect("ALL lists every status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_totals_and_active_counts_the_unfinished() {
        let mut c = SagaCensus::default();
        c.moved(None, Some(SagaStatus::Running));
        c.moved(None, Some(SagaStatus::Running));
        c.moved(Some(SagaStatus::Running), Some(SagaStatus::Compensating));
        assert_eq!(c.active(), 2);
        c.moved(
            Some(SagaStatus::Compensating),
            Some(SagaStatus::Compensated),
        );
        c.moved(Some(SagaStatus::Running), Some(SagaStatus::Running));
        assert_eq!(
            (
                c.count(SagaStatus::Running),
                c.count(SagaStatus::Compensated)
            ),
            (1, 1)
        );
        assert_eq!(c.active(), 1);
        c.moved(Some(SagaStatus::Compensated), None);
        assert_eq!(c.count(SagaStatus::Compensated), 0);
    }
}
