"""Bad-input cases for the endpoint: HTTP requests to the Flask app with a stand-in translator."""
import io

from tests.bad_inputs import case


def http(method: str, path: str, body=b"", headers=None, max_payload_mb: float = 0.01, environ=None) -> str:
    from serving_fakes import ReversingTranslator
    from seq2seq.serving.app import create_app
    from seq2seq.serving.providers import DirectProvider
    from seq2seq.serving.settings import ServingSettings
    app = create_app(DirectProvider(ReversingTranslator()), ServingSettings(max_payload_mb=max_payload_mb,
                                                                           body_timeout_s=2))
    response = app.test_client().open(path, method=method, data=body, headers=headers or {},
                                      environ_overrides=environ or {})
    return f"{response.status_code} {response.get_data(as_text=True).strip()}"


def request_case(case_id: str, what: str, *request, **options):
    """Register a case that sends one request: the arguments of http()."""
    case(case_id, "HTTP", what)(lambda base: http(*request, **options))


JSON = {"Content-Type": "application/json"}
INVOCATIONS = ("POST", "/invocations")


class _StallingInput:
    def read(self, size=-1):
        raise TimeoutError("timed out")

    readline = read


def _body_cut_off(wsgi_input):
    """http() options for a request announcing 100 bytes whose body comes from `wsgi_input`."""
    return dict(headers=dict(JSON, **{"Content-Length": "100"}),
                environ={"wsgi.input": wsgi_input, "wsgi.input_terminated": True, "CONTENT_LENGTH": "100"})


request_case("http-content-type", "Content-Type: text/csv", *INVOCATIONS, b"a,b", {"Content-Type": "text/csv"})
request_case("http-accept", "Accept: text/html", *INVOCATIONS, b'{"instances": []}', dict(JSON, Accept="text/html"))
request_case("http-invalid-json", "a JSON body cut off", *INVOCATIONS, b'{"instances": [{"data": "ein', JSON)
request_case("http-data-not-string", "instances[0].data is a number", *INVOCATIONS, b'{"instances": [{"data": 1}]}',
             JSON)
request_case("http-no-instances", "a JSON object without instances", *INVOCATIONS, b'{"data": "ein hund"}', JSON)
request_case("http-beam-size", "configuration.beam_size=1000", *INVOCATIONS,
             b'{"instances": [{"data": "ein hund"}], "configuration": {"beam_size": 1000}}', JSON)
request_case("http-too-large", "a body over SAGEMAKER_MAX_PAYLOAD_IN_MB (0.01 here)", *INVOCATIONS, b"x" * 20000,
             JSON)
request_case("http-deep-nesting", "JSON nested 100000 levels deep", *INVOCATIONS, b"[" * 100000, JSON,
             max_payload_mb=1)
request_case("http-jsonlines-line", "line 2 of an application/jsonlines body is not JSON", *INVOCATIONS,
             b'{"source": "ein hund"}\n{"source": \n', {"Content-Type": "application/jsonlines"})
request_case("http-bad-utf8", "a body that is not UTF-8", *INVOCATIONS, b'{"instances": [{"data": "\xff\xfe"}]}',
             JSON)
request_case("http-recordio-corrupt", "a RecordIO-protobuf body with a broken magic number", *INVOCATIONS,
             b"\x00" * 16, {"Content-Type": "application/x-recordio-protobuf"})


@case("http-stalled-body", "HTTP", "the client stops sending the body (SEQ2SEQ_BODY_TIMEOUT=2 here)")
def _(base):
    return http(*INVOCATIONS, **_body_cut_off(_StallingInput()))


@case("http-short-body", "HTTP", "the connection ends before Content-Length bytes arrived")
def _(base):
    return http(*INVOCATIONS, **_body_cut_off(io.BytesIO(b'{"instances": ')))


request_case("http-unknown-route", "POST /predict", "POST", "/predict", b"{}", JSON)
request_case("http-wrong-method", "GET /invocations", "GET", "/invocations")
