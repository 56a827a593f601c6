//! One CreateTags for many resources that take the same tag: the `asdr:device` tag of every
//! snapshot a multi-volume backup makes at about the same time, whichever step made it. The first
//! step to ask opens a batch and sends it once a moment passes with nobody joining; the others
//! add their resources and wait for its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asdr_planner::ports::StepError;
use aws_sdk_ec2::types::Tag;
use tokio::sync::watch;

use super::Ec2Provider;

type Answer = Option<Result<(), StepError>>;

#[derive(Debug)]
struct Batch {
    resources: Mutex<Vec<String>>,
    answer: watch::Sender<Answer>,
}

/// The batches still open, by tag.
#[derive(Debug, Default)]
pub(crate) struct TagBatches {
    open: tokio::sync::Mutex<HashMap<(String, String), Arc<Batch>>>,
}

/// A batch whose sender was stopped (its step interrupted) answers its waiters anyway.
struct AnswerOnDrop(Arc<Batch>);

impl Drop for AnswerOnDrop {
    fn drop(&mut self) {
        self.0.answer.send_if_modified(|a| {
            if a.is_none() {
                *a = Some(Err(StepError::transient(
                    "TaggingInterrupted",
                    "the step sending these tags stopped first",
                    Duration::from_secs(1),
                )));
                true
            } else {
                false
            }
        });
    }
}

/// EC2 takes up to 1000 resources in one CreateTags.
const MAX_RESOURCES: usize = 1000;

impl Ec2Provider {
    /// Tags `resources` with `key=value`, in one call with every other resource that asks for the
    /// same tag within `tag_window`.
    pub(crate) async fn tag_together(
        &self,
        key: &str,
        value: &str,
        resources: Vec<String>,
    ) -> Result<(), StepError> {
        let id = (key.to_string(), value.to_string());
        let (batch, sends) = {
            let mut open = self.tag_batches.open.lock().await;
            match open.get(&id) {
                Some(b) => {
                    b.resources.lock().expect("not poisoned").extend(resources);
                    (b.clone(), false)
                }
                None => {
                    let b = Arc::new(Batch {
                        resources: Mutex::new(resources),
                        answer: watch::channel(None).0,
                    });
                    open.insert(id.clone(), b.clone());
                    (b, true)
                }
            }
        };
        let mut answer = batch.answer.subscribe();
        if sends {
            let guard = AnswerOnDrop(batch.clone());
            // Open while others keep joining (a moment apart each), up to ten moments in all.
            let mut seen = 0;
            for _ in 0..10 {
                tokio::time::sleep(self.tag_window).await;
                let now = batch.resources.lock().expect("not poisoned").len();
                if now == seen {
                    break;
                }
                seen = now;
            }
            // Closed: whoever asks from now on opens the next batch.
            self.tag_batches.open.lock().await.remove(&id);
            let all = std::mem::take(&mut *batch.resources.lock().expect("not poisoned"));
            let mut result = Ok(());
            for chunk in all.chunks(MAX_RESOURCES) {
                if let Err(e) = self
                    .client
                    .create_tags()
                    .set_resources(Some(chunk.to_vec()))
                    .tags(Tag::builder().key(key).value(value).build())
                    .send()
                    .await
                {
                    result = Err(self.classify("CreateTags", e));
                    break;
                }
            }
            batch.answer.send_replace(Some(result));
            drop(guard);
        }
        let answered = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| StepError::permanent("TaggingLost", "the tag batch vanished"))?;
        answered.clone().expect("answered")
    }
}
