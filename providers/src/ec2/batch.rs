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

/// The batches still open, by key.
pub(crate) struct Batches<K, R> {
    open: tokio::sync::Mutex<HashMap<K, Arc<Batch<R>>>>,
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

/// A batch whose sender was stopped (its step interrupted) answers its waiters anyway.
struct AnswerOnDrop<R>(Arc<Batch<R>>);

impl<R> Drop for AnswerOnDrop<R> {
    fn drop(&mut self) {
        self.0.answer.send_if_modified(|a| {
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
            let mut open = self.open.lock().await;
            match open.get(&key) {
                Some(b) => {
                    b.items.lock().expect("not poisoned").extend(items);
                    (b.clone(), false)
                }
                None => {
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
            let guard = AnswerOnDrop(batch.clone());
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
            self.open.lock().await.remove(&key);
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
