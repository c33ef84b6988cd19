/* stream_spec.c — a table's DynamoDB stream in its stored definition:
 * StreamSpecification as CreateTable/UpdateTable take it, the stream's
 * label and ARN (DescribeTable's LatestStreamLabel/LatestStreamArn), and a
 * private "_stream" member with what DescribeStream needs after the stream
 * is disabled (its view type, when it was enabled and disabled). */
#include "items/items_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

static const char *const view_names[] = {NULL, "KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"};

int it_stream_view(const char *name)
{
	for (int v = IT_STREAM_KEYS_ONLY; name != NULL && v <= IT_STREAM_NEW_AND_OLD_IMAGES; v++)
		if (strcmp(view_names[v], name) == 0)
			return v;
	return IT_STREAM_NONE;
}

const char *it_stream_view_name(int view)
{
	return view >= IT_STREAM_KEYS_ONLY && view <= IT_STREAM_NEW_AND_OLD_IMAGES ? view_names[view] : "KEYS_ONLY";
}

const char *it_stream_spec_check(const json_t *spec, bool *enabled, int *view)
{
	*enabled = false;
	*view = IT_STREAM_NONE;
	if (!json_is_object(spec))
		return "Start of structure or map found where not expected.";
	json_t *en = json_object_get(spec, "StreamEnabled");
	json_t *vt = json_object_get(spec, "StreamViewType");
	if (!json_is_boolean(en))
		return "1 validation error detected: Value null at 'streamSpecification.streamEnabled' failed to satisfy constraint: Member must not be null";
	if (vt != NULL && it_stream_view(json_string_value(vt)) == IT_STREAM_NONE)
		return "1 validation error detected: Value at 'streamSpecification.streamViewType' failed to satisfy constraint: Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY]";
	*enabled = json_is_true(en);
	if (*enabled && vt == NULL)
		return "One or more parameter values were invalid: StreamViewType must be specified when StreamEnabled is true";
	if (!*enabled && vt != NULL)
		return "One or more parameter values were invalid: StreamViewType must not be specified when StreamEnabled is false";
	*view = *enabled ? it_stream_view(json_string_value(vt)) : IT_STREAM_NONE;
	return NULL;
}

void it_stream_spec_apply(json_t *def, const char *tenant, bool enabled, int view)
{
	int64_t now_ms = util_now_us() / 1000;
	if (!enabled) {
		json_object_set_new(def, "StreamSpecification", json_pack("{s:b}", "StreamEnabled", 0));
		json_t *st = json_object_get(def, "_stream");
		if (st != NULL)
			json_object_set_new(st, "disabled_ms", json_integer(now_ms));
		return;
	}
	/* the label: when the stream was enabled, ISO 8601 with milliseconds */
	time_t secs = (time_t)(now_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char label[40], arn[640];
	size_t n = strftime(label, sizeof(label), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(label + n, sizeof(label) - n, ".%03d", (int)(now_ms % 1000));
	snprintf(arn, sizeof(arn), "arn:aws:dynamodb:onceledger:%s:table/%s/stream/%s", tenant,
		 json_string_value(json_object_get(def, "TableName")), label);
	json_object_set_new(def, "StreamSpecification",
			    json_pack("{s:b, s:s}", "StreamEnabled", 1, "StreamViewType", it_stream_view_name(view)));
	json_object_set_new(def, "LatestStreamLabel", json_string(label));
	json_object_set_new(def, "LatestStreamArn", json_string(arn));
	json_object_set_new(def, "_stream", json_pack("{s:s, s:I}", "view", it_stream_view_name(view), "enabled_ms", (json_int_t)now_ms));
}
