//! One core's engine: its plugin instances, the chain of each hook, and their counters.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use mq_plugin_api::{HookId, HookSet, Order, Plugin};

use crate::config::{EngineConfig, FailurePolicy};
use crate::metrics::{HookCounters, Metrics};
use crate::observe::Observing;
use crate::registry::RegistryError;
use crate::watchdog::{self, Beat};

/// A plugin instance ready to run, with the engine's settings for it.
pub struct Loaded {
    /// Its name; chains are by order, then in name order.
    pub name: &'static str,
    /// The hooks it implements.
    pub hooks: HookSet,
    /// The hooks it observes: it runs beside the other observers once the chain has decided.
    pub observes: HookSet,
    /// How long one call may take.
    pub timeout: Duration,
    /// What a call that times out or panics does to the step.
    pub policy: FailurePolicy,
    /// Its place in its chains: they sort by order, then by name.
    pub order: Order,
    /// The instance.
    pub plugin: Box<dyn Plugin>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("hooks", &self.hooks)
            .field("order", &self.order)
            .field("observes", &self.observes)
            .finish_non_exhaustive()
    }
}

/// One worker core's plugins and chains. It runs chains with [`Engine::run`].
///
/// An engine belongs to one thread: its counters are plain cells, so counting a call costs an
/// add, not an atomic.
pub struct Engine {
    pub(crate) core: usize,
    pub(crate) slots: Box<[Loaded]>,
    /// For each hook, the indices into `slots` of the plugins that implement it, by order and
    /// then by name.
    pub(crate) chains: [Box<[u16]>; HookId::COUNT],
    /// `slots.len() × HookId::COUNT`, indexed by `plugin * COUNT + hook`.
    counters: Box<[HookCounters]>,
    /// For each hook, the plugins that observe it, by name, each with its counters.
    pub(crate) observers: [Box<[Observing]>; HookId::COUNT],
    pub(crate) retry_budget: u32,
    pub(crate) beat: Arc<Beat>,
    polls: Cell<u64>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("core", &self.core)
            .field("plugins", &self.slots)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for worker `core` running `plugins` under `config`'s guarantees, reporting
    /// what it polls to `beat`.
    ///
    /// # Errors
    ///
    /// Two plugins share a name.
    ///
    /// # Panics
    ///
    /// With 65,535 plugins or more: chains index plugins by `u16`.
    pub fn new(
        core: usize,
        config: &EngineConfig,
        mut plugins: Vec<Loaded>,
        beat: Arc<Beat>,
    ) -> Result<Engine, RegistryError> {
        let mut names: Vec<&'static str> = plugins.iter().map(|p| p.name).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(RegistryError::Duplicate {
                name: pair[0],
                modules: ["engine", "engine"],
            });
        }
        plugins.sort_by_key(|p| (p.order, p.name));
        assert!(
            plugins.len() < usize::from(u16::MAX),
            "fewer than 65535 plugins"
        );
        let chains = HookId::ALL.map(|hook| {
            (0..plugins.len())
                .filter(|&i| plugins[i].hooks.contains(hook))
                .map(|i| i as u16)
                .collect()
        });
        let observers = HookId::ALL.map(|hook| {
            (0..plugins.len())
                .filter(|&i| plugins[i].observes.contains(hook))
                .map(|i| Observing::new(i as u16))
                .collect()
        });
        let counters = (0..plugins.len() * HookId::COUNT)
            .map(|_| HookCounters::default())
            .collect();
        Ok(Engine {
            core,
            slots: plugins.into_boxed_slice(),
            chains,
            counters,
            observers,
            retry_budget: config.retry_budget,
            beat,
            polls: Cell::new(0),
        })
    }

    /// The worker core this engine belongs to.
    pub fn core(&self) -> usize {
        self.core
    }

    /// The plugins, in run order: by order, then by name.
    pub fn plugin_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.slots.iter().map(|s| s.name)
    }

    /// The chain of `hook`: names of the plugins it calls, in order.
    pub fn chain(&self, hook: HookId) -> impl Iterator<Item = &'static str> + '_ {
        self.chains[hook.index()]
            .iter()
            .map(|&i| self.slots[usize::from(i)].name)
    }

    /// Whether any plugin is in the chain of `hook`.
    pub fn has_chain(&self, hook: HookId) -> bool {
        !self.chains[hook.index()].is_empty()
    }

    /// This core's counters for every plugin × hook in a chain.
    pub fn metrics(&self) -> Metrics {
        let mut entries = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            for hook in slot.hooks.iter() {
                entries.push(
                    self.counters[index * HookId::COUNT + hook.index()].snapshot(slot.name, hook),
                );
            }
        }
        self.observer_metrics(&mut entries);
        Metrics::new(entries)
    }

    #[inline]
    pub(crate) fn counters(&self, plugin: u16, hook: HookId) -> &HookCounters {
        &self.counters[usize::from(plugin) * HookId::COUNT + hook.index()]
    }

    /// The tag of the next poll of `plugin` at `hook`.
    #[inline]
    pub(crate) fn next_tag(&self, plugin: u16, hook: HookId) -> u64 {
        let poll = self.polls.get().wrapping_add(1);
        self.polls.set(poll);
        watchdog::tag(poll, plugin, hook)
    }
}
