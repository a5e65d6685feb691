"""Operator tools, on top of every layer: the `hilrl` command line (cli), the all-in-one launcher
`hilrl run` (run), `hilrl eval` (evaluate), `hilrl browse` (browse), `hilrl doctor` (doctor),
`hilrl record-demos` (demos), `hilrl record-labels` (labels), `hilrl train-classifier`
(classifier_train), `hilrl keys` (keys) and `hilrl configs` (list_configs). A tool may import
anything; no process package imports a tool."""
