"""The chat templates the twins carry: each family's real template, as its checkpoints ship it."""

from attnviz.demo.build import CHAT_TEMPLATE

QWEN2_VL = CHAT_TEMPLATE  # Qwen2-VL-Instruct's, verbatim; Qwen2.5-VL-Instruct ships the same

# Qwen3-VL-Instruct's template for system/user/assistant messages (its tool-call branches left out): no default
# system prompt, images as <|vision_start|><|image_pad|><|vision_end|> where they appear in the content.
QWEN3_VL = """{%- set image_count = namespace(value=0) %}
{%- set video_count = namespace(value=0) %}
{%- macro render_content(content, do_vision_count) %}
    {%- if content is string %}
        {{- content }}
    {%- else %}
        {%- for item in content %}
            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}
                {%- if do_vision_count %}
                    {%- set image_count.value = image_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
                <|vision_start|><|image_pad|><|vision_end|>
            {%- elif 'video' in item or item.type == 'video' %}
                {%- if do_vision_count %}
                    {%- set video_count.value = video_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
                <|vision_start|><|video_pad|><|vision_end|>
            {%- elif 'text' in item %}
                {{- item.text }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + render_content(messages[0].content, false) + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- set content = render_content(message.content, True) %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}"""

# llava-hf/llava-1.5-7b-hf: "USER: <image>\n<question> ASSISTANT:"
LLAVA_1_5 = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content "
    "in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'ASSISTANT:' }}{% endif %}"
)

# llava-hf/llava-v1.6-mistral-7b-hf: "[INST] <image>\n<question> [/INST]"
LLAVA_NEXT_MISTRAL = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text']"
    " + '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + "
    "message['content'][0]['text'] + '</s> '}}{% else %}{{ raise_exception('Only user and assistant roles are "
    "supported!') }}{% endif %}{% endfor %}"
)

# llava-hf/llava-onevision-qwen2-*-ov-hf: Qwen2 turns, "<image>\n" per image before the text
LLAVA_ONEVISION = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in"
    " message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen2-*-Instruct (text only): string contents, default system prompt
QWEN2_INSTRUCT = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# google/gemma-3-4b-it (tokenizer_config.json): "<bos><start_of_turn>user\n<start_of_image>question<end_of_turn>\n
# <start_of_turn>model\n"; a system message is folded into the first user turn (its text + "\n\n"), unmarked.
GEMMA3 = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

# OpenGVLab/InternVL3-*-hf: ChatML turns without a default system prompt, "<IMG_CONTEXT>\n" per image where it
# appears in the content (the processor expands it to <img> + the tiles' tokens + </img>).
INTERNVL3 = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)

# HuggingFaceTB/SmolVLM2-*-Instruct: "<|im_start|>User:<image>question<end_of_utterance>\nAssistant:" (":" with no
# space when the message starts with an image); a system message is "System: ...<end_of_utterance>\n".
SMOLVLM2 = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}"
    "{{ '<video>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}{% endif %}"
)

# HuggingFaceM4/Idefics3-8B-Llama3: the same turns after "<|begin_of_text|>" (Llama 3's BOS, written by the template)
IDEFICS3 = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type']"
    " == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == "
    "'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# mistralai/Mistral-Small-3.1-24B-Instruct-2503 (its processor's chat_template, verbatim): "<s>[SYSTEM_PROMPT]...
# [/SYSTEM_PROMPT][INST][IMG]question[/INST]", the default system prompt dated today when none is given.
MISTRAL3 = (
    "{%- set today = strftime_now(\"%Y-%m-%d\") %}\n{%- set default_system_message = \"You are Mistral Small 3, a "
    "Large Language Model (LLM) created by Mistral AI, a French startup headquartered in Paris.\\nYour knowledge base "
    "was last updated on 2023-10-01. The current date is \" + today + \".\\n\\nWhen you're not sure about some "
    "information, you say that you don't have the information and don't make up anything.\\nIf the user's question "
    "is not clear, ambiguous, or does not provide enough context for you to accurately answer the question, you do "
    "not try to answer it right away and you rather ask the user to clarify their request (e.g. \\\"What are some good"
    " restaurants around me?\\\" => \\\"Where are you?\\\" or \\\"When is the next flight to Tokyo\\\" => \\\"Where "
    "do you travel from?\\\")\" %}\n\n{{- bos_token }}\n\n{%- if messages[0]['role'] == 'system' %}\n    {%- if "
    "messages[0] is string %}\n        {%- set system_message = messages[0]['content'] %}\n        {%- set "
    "loop_messages = messages[1:] %}\n    {%- else %} \n        {%- set system_message = messages[0]['content'][0]"
    "['text'] %}\n        {%- set loop_messages = messages[1:] %}\n    {%- endif %}\n{%- else %}\n    {%- set "
    "system_message = default_system_message %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{{- "
    "'[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}\n\n{%- for message in loop_messages %}\n    {%- if "
    "message['role'] == 'user' %}\n            {%- if message['content'] is string %}\n            {{- '[INST]' + "
    "message['content'] + '[/INST]' }}\n            {%- else %}\n                    {{- '[INST]' }}\n            "
    "        {%- for block in message['content'] %}\n                            {%- if block['type'] == 'text' %}\n"
    "                                    {{- block['text'] }}\n                            {%- elif block['type'] == "
    "'image' or block['type'] == 'image_url' %}\n                                    {{- '[IMG]' }}\n             "
    "                   {%- else %}\n                                    {{- raise_exception('Only text and image "
    "blocks are supported in message content!') }}\n                                {%- endif %}\n               "
    "         {%- endfor %}\n                    {{- '[/INST]' }}\n                {%- endif %}\n    {%- elif "
    "message['role'] == 'system' %}\n        {{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}\n   "
    " {%- elif message['role'] == 'assistant' %}\n        {%- if message['content'] is string %}\n            {{- "
    "message['content'] + eos_token }}\n        {%- else %}\n            {{- message['content'][0]['text'] + "
    "eos_token }}\n        {%- endif %}\n    {%- else %}\n        {{- raise_exception('Only user, system and "
    "assistant roles are supported!') }}\n    {%- endif %}\n{%- endfor %}"
)

# zai-org/GLM-4.1V-9B-Thinking (chat_template.jinja, verbatim): "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|>
# <|end_of_image|>question<|assistant|>\n"; no turn ends (the next role token closes a turn, and ends generation).
GLM4V = (
    "[gMASK]<sop>\n{%- for msg in messages %}\n    {%- if msg.role == 'system' %}\n<|system|>\n{{ msg.content }}\n"
    "    {%- elif msg.role == 'user' %}\n<|user|>{{ '\\n' }}\n\n        {%- if msg.content is string %}\n"
    "{{ msg.content }}\n        {%- else %}\n            {%- for item in msg.content %}\n                {%- if "
    "item.type == 'video' or 'video' in item %}\n<|begin_of_video|><|video|><|end_of_video|>\n                {%- "
    "elif item.type == 'image' or 'image' in item %}\n<|begin_of_image|><|image|><|end_of_image|>\n               "
    " {%- elif item.type == 'text' %}\n{{ item.text }}\n                {%- endif %}\n            {%- endfor %}\n  "
    "      {%- endif %}\n    {%- elif msg.role == 'assistant' %}\n        {%- if msg.metadata %}\n<|assistant|>{{ "
    "msg.metadata }}\n{{ msg.content }}\n        {%- else %}\n<|assistant|>\n{{ msg.content }}\n        {%- endif "
    "%}\n    {%- endif %}\n{%- endfor %}\n{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
