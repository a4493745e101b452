"""Training: Optax optimiser from config, train state, train/eval steps, BPTT modes, the loop,
checkpoints.

    optimizer = optimizer_from_config(cfg.optimizer, include_clip=False)
    trainer = make_trainer(init_params, loss_fn, optimizer, sample_batch,
                           clip=clipping_from_config(cfg.optimizer.clip))
    state, metrics = jax.jit(make_train(trainer, num_steps=1000, chunk_size=100))(key)
"""

from seqjax.train.checkpoint import (
    checkpoint_manager,
    checkpoint_manager_from_config,
    restore_checkpoint,
    save_checkpoint,
)
from seqjax.train.loop import (
    BPTTOptions,
    EarlyStopping,
    EarlyStoppingState,
    FitResult,
    NonFiniteError,
    Trainer,
    bptt_from_config,
    early_stopping_from_config,
    early_stopping_update,
    fit,
    fit_from_config,
    make_train,
    make_trainer,
)
from seqjax.train.optim import (
    CLIPPINGS,
    OPTIMIZERS,
    SCHEDULES,
    clipping_from_config,
    get_optimizer,
    optimizer_from_config,
    schedule_from_config,
)
from seqjax.train.state import TrainState, init_train_state
from seqjax.train.step import (
    Metrics,
    all_finite,
    make_eval_step,
    make_train_step,
    stream_num_windows,
    stream_window,
)

__all__ = [
    "CLIPPINGS",
    "OPTIMIZERS",
    "SCHEDULES",
    "BPTTOptions",
    "EarlyStopping",
    "EarlyStoppingState",
    "FitResult",
    "Metrics",
    "NonFiniteError",
    "TrainState",
    "Trainer",
    "all_finite",
    "bptt_from_config",
    "checkpoint_manager",
    "checkpoint_manager_from_config",
    "clipping_from_config",
    "early_stopping_from_config",
    "early_stopping_update",
    "fit",
    "fit_from_config",
    "get_optimizer",
    "init_train_state",
    "make_eval_step",
    "make_train",
    "make_train_step",
    "make_trainer",
    "optimizer_from_config",
    "restore_checkpoint",
    "save_checkpoint",
    "schedule_from_config",
    "stream_num_windows",
    "stream_window",
]
