//! One call for many steps that ask for the same kind of thing at about the same time: the
//! `asdr:device` tag of every snapshot of a set, the state of every volume or instance being
//! watched. The first step to ask opens a batch and sends it once a moment passes with nobody
//! joining (a bounded number of moments); the others add their items and wait for its answer. Whoever asks
//! after a batch closed opens the next one, so every answer comes from a call made after the
//! question.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asdr_planner::ports::StepError;
use tokio::sync::watch;

type Answer<R> = Option<Result<R, StepError>>;

struct Batch<R> {
    items: Mutex<Vec<String>>,
    answer: watch::Sender<Answer<R>>,
}

/// The batches still open, by key (a plain mutex: never held across an await, and a batch's
/// guard takes it when dropped).
pub(crate) struct Batches<K, R> {
    open: Mutex<HashMap<K, Arc<Batch<R>>>>,
}

impl<K, R> Default for Batches<K, R> {
    fn default() -> Self {
        Batches {
            open: Default::default(),
        }
    }
}

impl<K, R> std::fmt::Debug for Batches<K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batches")
    }
}

/// A batch whose sender was stopped (its step interrupted or timed out, maybe while the batch
/// was still open for others to join) answers its waiters anyway, and is closed: a batch left
/// open with its answer given would hand that error to every later question under its key, for
/// the rest of the apply.
struct AnswerOnDrop<'a, K: Eq + Hash, R> {
    batch: Arc<Batch<R>>,
    open: &'a Mutex<HashMap<K, Arc<Batch<R>>>>,
    key: K,
}

impl<K: Eq + Hash, R> Drop for AnswerOnDrop<'_, K, R> {
    fn drop(&mut self) {
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if open
                .get(&self.key)
                .is_some_and(|b| Arc::ptr_eq(b, &self.batch))
            {
                open.remove(&self.key);
            }
        }
        self.batch.answer.send_if_modified(|a| {
            if a.is_none() {
                *a = Some(Err(StepError::transient(
                    "BatchInterrupted",
                    "the step sending this batch stopped first",
                    Duration::from_secs(1),
                )));
                true
            } else {
                false
            }
        });
    }
}

impl<K: Eq + Hash + Clone, R: Clone> Batches<K, R> {
    /// `items` sent with every other item asked for under `key` within `window` (again while
    /// others keep joining or `hold` says more are coming, `moments` windows at most); `send`
    /// makes the call when this caller opened the batch.
    pub(crate) async fn join<F, Fut>(
        &self,
        key: K,
        items: Vec<String>,
        (window, moments): (Duration, u32),
        hold: &(dyn Fn() -> bool + Sync),
        send: F,
    ) -> Result<R, StepError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<R, StepError>>,
    {
        let (batch, opened) = {
            let mut open = self.open.lock().expect("not poisoned");
            match open.get(&key) {
                // Only a batch not yet answered takes more items.
                Some(b) if b.answer.borrow().is_none() => {
                    b.items.lock().expect("not poisoned").extend(items);
                    (b.clone(), false)
                }
                _ => {
                    let b = Arc::new(Batch {
                        items: Mutex::new(items),
                        answer: watch::channel(None).0,
                    });
                    open.insert(key.clone(), b.clone());
                    (b, true)
                }
            }
        };
        let mut answer = batch.answer.subscribe();
        if opened {
            let guard = AnswerOnDrop {
                batch: batch.clone(),
                open: &self.open,
                key: key.clone(),
            };
            let mut seen = 0;
            for _ in 0..moments.max(1) {
                tokio::time::sleep(window).await;
                let now = batch.items.lock().expect("not poisoned").len();
                if now == seen && !hold() {
                    break;
                }
                seen = now;
            }
            // Closed: whoever asks from now on opens the next batch.
            self.open.lock().expect("not poisoned").remove(&key);
            let mut all = std::mem::take(&mut *batch.items.lock().expect("not poisoned"));
            all.sort();
            all.dedup();
            let result = send(all).await;
            batch.answer.send_replace(Some(result));
            drop(guard);
        }
        let answered = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| StepError::permanent("BatchLost", "the batch vanished"))?;
        answered.clone().expect("answered")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found in review: an opener stopped while its batch was still open for others to join
    /// (its step timed out or was interrupted while a view held the batch until its gap had
    /// passed) left the batch open with its error given, and every later question under the
    /// key got that error at once, for the rest of the apply.
    #[tokio::test]
    async fn a_batch_whose_opener_is_stopped_closes_and_the_next_question_gets_an_answer() {
        let batches: Batches<(), usize> = Batches::default();
        let stopped = tokio::time::timeout(
            Duration::from_millis(50),
            batches.join(
                (),
                vec!["a".into()],
                (Duration::from_millis(20), 50),
                &|| true,
                |items| async move { Ok(items.len()) },
            ),
        )
        .await;
        assert!(
            stopped.is_err(),
            "the opener was stopped while it held its batch"
        );
        let answer = batches
            .join(
                (),
                vec!["b".into(), "c".into()],
                (Duration::from_millis(1), 1),
                &|| false,
                |items| async move { Ok(items.len()) },
            )
            .await;
        assert_eq!(
            answer.expect("answered"),
            2,
            "a batch of its own was sent for the later question"
        );
    }
}
