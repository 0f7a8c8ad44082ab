"""The model: the text it reads and what computes on it.

What it owns: the tokenizer and the `tf.data` pipelines (`preprocessing`, the one function used
in training and inside the export), the encoders (`encoders` resolves a name or a path; `bert`
and `bert_fast` are the offline BERT that `conversion` builds from a Hugging Face checkpoint),
the classifier head and class weights (`classifier`), and the n-gram model beside it (`ngram`).
It may import `app.options`, `app.config` and `app.runtime`; nothing here imports data reading,
training, serving or reporting.
"""
