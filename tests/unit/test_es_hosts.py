"""EARSHOT_ES_URL names one Elasticsearch node or several (a cluster), separated by commas."""

from pipeline.settings import Settings
from pipeline.store.mention_sink import es_hosts, make_es_client


def test_one_url_is_one_host():
    assert es_hosts("http://127.0.0.1:9200") == ["http://127.0.0.1:9200"]


def test_a_comma_list_is_every_node_blanks_dropped():
    assert es_hosts(" http://a:9200, http://b:9200,,http://c:9200 ") == ["http://a:9200", "http://b:9200", "http://c:9200"]


def test_the_client_knows_every_node_and_fails_over_on_connection_errors_only():
    client = make_es_client(Settings(es_url="http://127.0.0.1:19201,http://127.0.0.1:19202,http://127.0.0.1:19203"))
    assert len(client.transport.node_pool.all()) == 3
    # The client's per-request options (elasticsearch-py keeps them on the client, not the transport).
    assert client._max_retries == 2 and tuple(client._retry_on_status) == () and client._retry_on_timeout is False
    single = make_es_client(Settings(es_url="http://127.0.0.1:9200"))
    assert len(single.transport.node_pool.all()) == 1 and single._max_retries == 0
