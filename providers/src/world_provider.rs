//! The world-file provider: acts on a world file with EC2's and Aerospike's semantics
//! (`world_sim`), so apply can be rehearsed and tested deterministically. Every change is written
//! atomically (temp file + rename) before the call returns: a crash leaves the old world or the
//! new one, never half of each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use asdr_planner::World;
use asdr_planner::ports::{Progress, Provider, Resources, StepError, StepInput};
use tokio::sync::Mutex;

use crate::world_file::{self, Format, WorldFileError};
use crate::world_sim::{self, Ctx, Simulation};

/// Called at named points ("after-act:<step>") so tests can kill the process there.
pub type Hook = Arc<dyn Fn(&str) + Send + Sync>;

struct State {
    world: World,
    sim: Simulation,
    /// Bumped by every change to `world`.
    generation: u64,
}

pub struct WorldFileProvider {
    path: PathBuf,
    sim_path: Option<PathBuf>,
    cluster: String,
    state: Mutex<State>,
    /// Held while writing; remembers the generation last written.
    writer: Mutex<u64>,
    hook: Hook,
}

impl std::fmt::Debug for WorldFileProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldFileProvider")
            .field("path", &self.path)
            .finish()
    }
}

impl WorldFileProvider {
    /// `sim_path`: a simulation file (latency, snapshot polls, faults); fault counts are written
    /// back to it as they are used, so "fail 2 times" holds across processes.
    pub fn open(
        path: &Path,
        sim_path: Option<&Path>,
        cluster: &str,
        hook: Hook,
    ) -> Result<Self, WorldFileError> {
        let world = world_file::load(path)?;
        let sim = match sim_path {
            Some(p) => load_simulation(p)?,
            None => Simulation::default(),
        };
        Ok(WorldFileProvider {
            path: path.to_path_buf(),
            sim_path: sim_path.map(Path::to_path_buf),
            cluster: cluster.to_string(),
            state: Mutex::new(State {
                world,
                sim,
                generation: 0,
            }),
            writer: Mutex::new(0),
            hook,
        })
    }

    pub async fn simulation(&self) -> Simulation {
        self.state.lock().await.sim.clone()
    }

    pub async fn world(&self) -> World {
        self.state.lock().await.world.clone()
    }

    /// Group commit: returns once generation `upto` is on disk. One write covers every change made
    /// before it, so parallel steps share writes instead of queueing one write each.
    async fn persist(&self, upto: u64) -> Result<(), StepError> {
        let mut written = self.writer.lock().await;
        if *written >= upto {
            return Ok(());
        }
        let (world, generation) = {
            let st = self.state.lock().await;
            (st.world.clone(), st.generation)
        };
        let text = world_file::to_string(&world, Format::of(&self.path))
            .map_err(|e| StepError::permanent("WorldWrite", e.to_string()))?;
        write_atomically(&self.path, &text).map_err(|e| {
            StepError::permanent("WorldWrite", format!("{}: {e}", self.path.display()))
        })?;
        *written = generation;
        Ok(())
    }

    async fn latency(&self) {
        let ms = self.state.lock().await.sim.latency_ms;
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

pub fn load_simulation(path: &Path) -> Result<Simulation, WorldFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| WorldFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_saphyr::from_str(&text)
        .map_err(|e| world_file::yaml_error(&path.display().to_string(), &e))
}

/// Writes `text` to `path` whole or not at all.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "{}.asdr-tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

impl Provider for WorldFileProvider {
    async fn observe(&self, input: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        self.latency().await;
        let (found, generation) = {
            let st = self.state.lock().await;
            let cx = Ctx {
                cluster: &self.cluster,
                sim: &st.sim,
            };
            (world_sim::observe(&st.world, &cx, &input), st.generation)
        };
        // What is adopted must be on disk before the journal says so.
        if found.is_some() {
            self.persist(generation).await?;
        }
        Ok(found)
    }

    async fn act(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        self.latency().await;
        let mut st = self.state.lock().await;
        if let Some(fault) = st
            .sim
            .faults
            .iter_mut()
            .find(|f| f.matches(&input.step.id) && f.times != Some(0))
        {
            let err = if fault.transient {
                StepError::transient(
                    &fault.code,
                    format!("injected fault on {}", input.step.id),
                    Duration::from_millis(2),
                )
            } else {
                StepError::permanent(&fault.code, format!("injected fault on {}", input.step.id))
            };
            if let Some(times) = &mut fault.times {
                *times -= 1;
                if let Some(p) = &self.sim_path {
                    let text = serde_saphyr::to_string(&st.sim)
                        .map_err(|e| StepError::permanent("SimulationWrite", e.to_string()))?;
                    write_atomically(p, &text)
                        .map_err(|e| StepError::permanent("SimulationWrite", e.to_string()))?;
                }
            }
            return Err(err);
        }
        // Act on a copy: a step that fails halfway leaves the world as it was.
        let mut next = st.world.clone();
        let progress = world_sim::act(
            &mut next,
            &Ctx {
                cluster: &self.cluster,
                sim: &st.sim,
            },
            &input,
        )?;
        world_sim::canonicalize(&mut next);
        if next != st.world {
            st.world = next;
            st.generation += 1;
        }
        let generation = st.generation;
        drop(st);
        self.persist(generation).await?;
        // The effect exists now, but the executor has not recorded it: a crash here is the one
        // idempotency must survive.
        (self.hook)(&format!("after-act:{}", input.step.id));
        Ok(progress)
    }
}
