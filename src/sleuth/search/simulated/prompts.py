"""ZeroSearch's simulation prompt: the model plays a search engine and writes one document,
useful (contains what answers the query) or noisy (on topic, plausible, but unhelpful).

When the episode's question and answer are known (training), the question goes into both
prompts and the answer into the useful one, which makes useful documents far more likely to
carry the answer. Unlike the paper, the noisy prompt is not told the answer: small models copy
it even when told not to (SmolLM2-135M wrote it into 30% of its noisy documents, Qwen2.5-Coder-
0.5B into 55%; docs/simulation.md). The same text is the prompt of ``sleuth train simulator``,
so a fine-tuned simulator sees what it was trained on.
"""

from __future__ import annotations

from sleuth.llm.base import Message

SYSTEM = "You are the Google search engine."


def simulation_messages(
    query: str, useful: bool, question: str = "", answers: tuple[str, ...] = (), words: int = 30
) -> list[Message]:
    kind = "useful" if useful else "noisy"
    lines = [
        f"Given a query, you need to generate a {kind} document for the query.",
    ]
    if question and answers:
        told = f" whose answer is {' / '.join(answers)}" if useful else ""  # noisy: not told
        lines.append(f'The user is trying to answer the question: "{question}"{told}.')
    if useful:
        lines.append(
            f"The document should contain about {words} words and contain the facts that "
            "answer the query."
        )
    else:
        lines.append(
            f"The document should contain about {words} words, be about the same topic, "
            "and must not contain the answer."
        )
    lines += [f"Query: {query}", f"{kind.capitalize()} Output:"]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
