"""Training, config-free: Optax chains, the train state and step, BPTT modes, the loop,
checkpoints.

    optimizer = make_optimizer("adam", 1e-3)
    trainer = make_trainer(init_params, loss_fn, optimizer, sample_batch,
                           clip=get_clipping("global_norm", 1.0))
    state, metrics = jax.jit(make_train(trainer, num_steps=1000, chunk_size=100))(key)
    result = fit(compile_trainer(trainer), key, 1000, chunk_size=100)   # from the host
"""

from seqjax.train.checkpoint import checkpoint_manager, restore_checkpoint, save_checkpoint
from seqjax.train.loop import (
    BPTTOptions,
    EarlyStopping,
    EarlyStoppingState,
    FitResult,
    NonFiniteError,
    Trainer,
    TrainerShardings,
    compile_trainer,
    early_stopping_update,
    fit,
    make_train,
    make_trainer,
)
from seqjax.train.optim import (
    CLIPPINGS,
    OPTIMIZERS,
    SCHEDULES,
    get_clipping,
    get_optimizer,
    get_schedule,
    make_optimizer,
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
    "TrainerShardings",
    "all_finite",
    "checkpoint_manager",
    "compile_trainer",
    "early_stopping_update",
    "fit",
    "get_clipping",
    "get_optimizer",
    "get_schedule",
    "init_train_state",
    "make_eval_step",
    "make_optimizer",
    "make_train",
    "make_train_step",
    "make_trainer",
    "restore_checkpoint",
    "save_checkpoint",
    "stream_num_windows",
    "stream_window",
]
