"""What a run did, apart from what it was told (`app.config.RunConfig`).

The stages of `app.train` add to one `RunRecord` as they finish: the data as read (each split's
source and size, the share of texts the length cuts), the contrastive pairs, the n-gram model
and how it was combined, self-training on unlabelled texts, the temperature, the decision
thresholds, the training (wall time, epochs, budget, backups) and the export. It is saved as
`record.json` in the run folder and inside the export (`assets/record.json`), and `report.json`
holds it beside the config under `record`.

No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass
class RunRecord:
    """Sections a stage fills (`add`); each is a JSON-able dict, empty until its stage has run."""

    data: dict = dataclasses.field(default_factory=dict)  # sources, examples, over_seq_length
    contrastive: dict = dataclasses.field(default_factory=dict)  # the contrastive regime's pairs and head
    ngram: dict = dataclasses.field(default_factory=dict)  # app.model.ngram's figures, the ensemble rule
    self_training: dict = dataclasses.field(default_factory=dict)  # --unlabeled-data: texts, labels, gain
    calibration: dict = dataclasses.field(default_factory=dict)  # the temperature and what it was fitted on
    thresholds: dict = dataclasses.field(default_factory=dict)  # multi-label: label -> decision threshold
    threshold_rule: dict = dataclasses.field(default_factory=dict)  # which rule set them, and why
    training: dict = dataclasses.field(default_factory=dict)  # wall time, epochs, budget, backups
    export: dict = dataclasses.field(default_factory=dict)  # path and version

    def add(self, section: str, **values) -> None:
        """Merge `values` into `section` (a later stage adds to what an earlier one wrote)."""
        if section not in self.__dataclass_fields__:
            raise ValueError(f"section must be one of {sorted(self.__dataclass_fields__)}, got {section!r}")
        getattr(self, section).update(values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
