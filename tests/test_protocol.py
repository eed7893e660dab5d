from app.jobs.protocol import Error, LineAssembler, Log, Progress, Result, decode, encode


def test_messages_round_trip_through_a_line():
    for message in (Log("hello", "builder"), Progress(42.5, "layers", "layer 3 of 8"), Result({"a": 1}), Error("bad")):
        line = encode(message)
        assert line.endswith("\n") and line.count("\n") == 1
        assert decode(line) == message


def test_text_that_is_not_protocol_becomes_a_stderr_log():
    assert decode("Killed\n") == Log("Killed", "stderr")
    assert decode('{"type": "nonsense"}') == Log('{"type": "nonsense"}', "stderr")
    assert decode("{not json") == Log("{not json", "stderr")


def test_a_utf8_character_split_across_chunks_is_decoded_whole():
    assembler = LineAssembler()
    data = "größe ✓\n".encode()
    split = data.index("✓".encode()) + 1
    assert assembler.feed(data[:split]) == []
    assert assembler.feed(data[split:]) == ["größe ✓"]


def test_carriage_return_updates_collapse_to_the_last_text():
    assembler = LineAssembler()
    lines = assembler.feed(b" 10%|#  | 1/10\r 50%|##### | 5/10\r100%|##########| 10/10\nnext\npartial")
    assert lines == ["100%|##########| 10/10", "next"]
    assert assembler.flush() == ["partial"]
